"""A request as the prompt the model sees: the one `render`, the task's prompt, tools and limits.

- Messages render through `agentmill.data.render.render` exactly as in training and chat
  (``developer`` is a system message; assistant `tool_calls` and `tool` results become the
  Hermes blocks the model was trained on).
- A task's trained system prompt is put first when the request brings no system message.
- `tool_choice`: "none" hides the tools; "auto" (the default with tools) shows them;
  "required" starts the answer with ``<tool_call>`` so the model must call one; a named
  function also writes its name, so that one is called.
- Lengths: the prompt must leave room in the context; `max_tokens` may not pass the cap or
  the context (400 naming the numbers); without it, the answer may use what is left, up to the cap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from agentmill.agent.toolcall import OPEN
from agentmill.data.render import render
from agentmill.serve.errors import ApiError


@dataclass
class ToolPlan:
    tools: list[dict] | None = None  # shown in the prompt
    allowed: set[str] = field(default_factory=set)  # names a call may use
    forced: str = ""  # text the answer starts with (required / named tool_choice)
    choice: str = "none"

    @property
    def active(self) -> bool:
        return bool(self.tools)


def request_messages(body) -> list[dict]:
    messages = []
    for m in body.messages:
        message = {"role": "system" if m.role == "developer" else m.role, "content": m.content}
        if m.tool_calls:
            message["tool_calls"] = [c.model_dump() for c in m.tool_calls]
        if m.tool_call_id:
            message["tool_call_id"] = m.tool_call_id
        if m.name:
            message["name"] = m.name
        messages.append(message)
    return messages


def with_task_prompt(run, task: str | None, messages: list[dict]) -> list[dict]:
    system = (run.task_info(task) if task else {}).get("system")
    if system and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def check_tool_schemas(tools: list[dict]) -> None:
    """A 400 naming the tool whose `parameters` is not a JSON schema of an object, or a name used twice."""
    import jsonschema

    seen: set[str] = set()
    for i, tool in enumerate(tools):
        fn = tool["function"]
        where = f"tools.[{i}].function"
        if fn["name"] in seen:
            raise ApiError(400, f"tools[{i}]: the function name '{fn['name']}' is used twice", param=f"{where}.name")
        seen.add(fn["name"])
        params = fn.get("parameters")
        if params is None:
            continue
        try:
            jsonschema.Draft202012Validator.check_schema(params)
        except jsonschema.SchemaError as err:
            at = "/".join(map(str, err.path))
            raise ApiError(400, f"tools[{i}] ({fn['name']}): parameters is not a valid JSON schema"
                                f"{' at ' + at if at else ''}: {err.message}", param=f"{where}.parameters") from None
        if params.get("type", "object") != "object":
            raise ApiError(400, f"tools[{i}] ({fn['name']}): parameters must describe an object "
                                f"(\"type\": \"object\"), not {json.dumps(params.get('type'))}",
                           param=f"{where}.parameters")


def tool_plan(body) -> ToolPlan:
    choice = body.tool_choice
    if not body.tools:
        if choice not in (None, "none", "auto"):
            raise ApiError(400, "tool_choice asks for a tool call but the request has no tools", param="tool_choice")
        return ToolPlan()
    tools = [t.model_dump(exclude_none=True) for t in body.tools]
    check_tool_schemas(tools)
    names = {t["function"]["name"] for t in tools}
    if choice == "none":
        return ToolPlan()
    if choice in (None, "auto"):
        return ToolPlan(tools, names, choice="auto")
    if choice == "required":
        return ToolPlan(tools, names, OPEN + '\n{"name": "', choice="required")
    name = choice.function.name
    if name not in names:
        raise ApiError(400, f"tool_choice names the function '{name}', which is not among the request's tools "
                            f"({', '.join(sorted(names))})", param="tool_choice")
    return ToolPlan(tools, {name}, OPEN + '\n{"name": ' + json.dumps(name) + ', "arguments": ', choice="function")


def chat_prompt(run, body, task: str | None) -> tuple[str, ToolPlan]:
    """(the rendered prompt, ending with the assistant's generation prompt; the tool plan)."""
    plan = tool_plan(body)
    messages = with_task_prompt(run, task, request_messages(body))
    try:
        text = render(run.tokenizer, messages, add_generation_prompt=True, tools=plan.tools)
    except Exception as err:  # a template refusing the conversation (e.g. roles out of order)
        raise ApiError(400, f"cannot render these messages with the model's chat template: {err}",
                       param="messages") from None
    return text, plan


def context_length(run, settings) -> int:
    return settings.context_tokens or getattr(getattr(run.model, "config", None), "max_position_embeddings", 2048)


def answer_budget(n_prompt: int, asked: dict[str, int | None], context: int, cap: int, param: str) -> int:
    """max_new_tokens for this request, or a 400 that names the numbers. `asked`: the request's
    token limits by field name, the one that counts first (chat's max_completion_tokens before
    max_tokens); each one sent is held to the cap."""
    if n_prompt >= context:
        raise ApiError(400, f"the prompt has {n_prompt} tokens but this model's context length is {context} "
                            f"tokens; shorten it", param=param, code="context_length_exceeded")
    for name, value in asked.items():
        if value is not None and value > cap:
            raise ApiError(400, f"{name} is {value} but this server allows at most {cap}", param=name,
                           code="max_tokens_too_large")
    name, requested = next(((n, v) for n, v in asked.items() if v is not None), (None, None))
    if requested is None:
        return min(cap, context - n_prompt)
    if n_prompt + requested > context:
        raise ApiError(400, f"this model's context length is {context} tokens; the prompt has {n_prompt} and "
                            f"{name} asks for {requested} more ({n_prompt + requested} in all)",
                       param=name, code="context_length_exceeded")
    return requested
