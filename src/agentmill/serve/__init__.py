"""HTTP serving of a run: an OpenAI-compatible API, the agent with stored sessions, and the web page.

`agentmill serve RUN_DIR [--host 127.0.0.1] [--port 8000] [--api-key KEY ...] [--insecure-public]
[--db PATH]`, or in code ``create_app(RunModel.load(RUN_DIR), store=open_store())``.

Routes (stable: the web page in static/ uses /v1/models and /v1/agent/...)
--------------------------------------------------------------------------
Public: ``GET /`` (the page, static/index.html), ``GET /static/...``, ``GET /health``.
Everything under /v1 needs ``Authorization: Bearer KEY`` when the server has keys.

``GET /v1/models`` → ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by",
"root", "parent", "agentmill": {"kind": "base"|"task"|"auto", ...}}]}``: the base model (id =
manifest ``base_model``, else the run name), every task (parent = the base; ``agentmill.adapter``
says whether it has a LoRA adapter), and ``auto`` (the router chooses). ``GET /v1/models/{id}``.

``POST /v1/chat/completions`` — OpenAI's request: ``messages``, ``model`` (a task, ``auto``, the
base id or ``base``), ``temperature`` (default 0 = greedy), ``top_p``, ``max_tokens`` /
``max_completion_tokens``, ``stop``, ``seed``, ``n`` (1-16 choices), ``tools``, ``tool_choice``
("auto" | "none" | "required" | {"type": "function", "function": {"name"}}), ``stream``,
``stream_options.include_usage``. The answer is a ``chat.completion`` whose ``model`` is the task
that answered and ``agentmill`` = ``{"task", "adapter", "routed", "scores"}``; the model's
tool calls come back as OpenAI ``tool_calls`` with ``finish_reason: "tool_calls"``. Streamed
exactly as OpenAI does (serve/chat.py).

Chat messages may carry OpenAI content parts ``image_url`` (data URLs; http(s) only with
``media.fetch_urls``), ``input_audio`` and ``file`` (images): each is read (OCR, speech
recognition; media/) into a labelled text part the model reads, and ``agentmill.media`` of the
answer lists what was read. A part that cannot be read is a 400 naming ``messages.[i].content.[j]``.
``GET /v1/models`` entries say what they accept in ``agentmill.input``.

``POST /v1/audio/transcriptions``, ``/v1/audio/translations``, ``/v1/audio/speech``: OpenAI's audio
routes (serve/audio_routes.py). ``GET /v1/agent/media/{sha256}``: a stored message's original file.

``POST /v1/completions`` — ``prompt`` (one string, or a list holding one), ``model``, the same sampling fields: the
prompt continued without the chat template (serve/completions.py).

Agent (server-side tools of the run, sessions in the store; with keys, each key sees only its own sessions):
- ``POST /v1/agent/sessions`` ``{"title"?}`` → the session ``{"object": "agent.session", "id", "title",
  "created", "updated", "prompt_tokens", "completion_tokens", "run"}``
- ``GET /v1/agent/sessions[?all=true&limit=N]`` → ``{"object": "list", "data": [session, ...]}``, most
  recent first; this run's sessions unless ``all``
- ``GET /v1/agent/sessions/{id}`` → the session plus ``"messages"``: the stored steps in order
  (``seq, role, content, kind, task, tool_calls, tool_call_id, name, meta, created, ...``; kinds
  user, route, model, tool_result, answer, notice; ``meta`` is the step itself)
- ``DELETE /v1/agent/sessions/{id}`` → ``{"id", "object": "agent.session", "deleted": true}``
- ``POST /v1/agent/sessions/{id}/messages`` ``{"content": str | OpenAI content parts (text,
  image_url, input_audio, file), "task": "auto"|"base"|NAME, "stream": bool}``. Not streamed: ``{"object": "agent.turn", "session_id", "answer", "task",
  "stopped", "usage", "steps": [...]}``. Streamed: SSE named events, each ``event: KIND`` +
  ``data: JSON``, in order of happening:
  ``media`` {media: [{type, name, engine, text, sha256, ...}]} (only for a message with images or
  recordings: what was read from them) · ``route`` {task (null = the base model), scores, forced} · ``token`` {text} (answer text only,
  never tool-call markup) · ``tool_call`` {id, type, function: {name, arguments (JSON text)}} ·
  ``tool_result`` {id, name, content, error} · ``notice`` {reason, text} · ``answer`` {content,
  task, usage} · ``done`` {session_id, task, stopped, usage} — or ``error`` {"error": {...}}.
  One message at a time per session (409 while one runs); a client that leaves ends the turn.

``GET /openapi.json``: all of the above as the server promises it, errors and this run's names
and limits included (serve/contract.py); tests/test_contract.py fuzzes the server against it.

Errors have OpenAI's shape with the right status (serve/errors.py); limits are `ServeSettings`
fields (serve/settings.py). Concurrent requests share one batched decode loop with a LoRA
adapter per row (serve/engine.py, serve/batch.py).
"""

from agentmill.serve.app import create_app
from agentmill.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
