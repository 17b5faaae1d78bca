"""Read and validate data files in the four supported formats.

Every record of a file is checked before anything is returned. Problems are collected as
``"FILE:LINE: reason"`` and raised together as one `DataError`; no record is ever dropped
silently. Formats (JSON Lines unless noted):

- ``text``: a ``.txt`` file of documents separated by blank lines, or ``{"text": str}`` lines.
- ``instruction``: ``{"instruction", "input"?, "output", "system"?}``.
- ``classification``: ``{"text", "label"}``.
- ``chat``: OpenAI ``{"messages": [...]}`` (with ``tool_calls`` / ``tool`` messages) or
  ShareGPT ``{"conversations": [{"from", "value"}]}``; both become OpenAI-style messages.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from agentmill.data.media import check_parts, has_media, read_record_media
from agentmill.errors import AgentmillError, DataError

FORMATS = ("text", "instruction", "classification", "chat")
ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "tool": "tool", "observation": "tool", "function_response": "tool",
                  "function_call": "assistant"}


@dataclass
class Record:
    """One validated record. `source` is "FILE:LINE" for error messages."""

    source: str
    text: str | None = None
    messages: list[dict] | None = None
    label: str | None = None
    tools: list[dict] | None = None  # chat: OpenAI tool schemas shown to the model with this record
    media: bool = False  # a message came with an image or a recording (read into text: data/media.py)


class _Bad(Exception):
    """A problem with one record; the message is the reason."""


def _type_name(value) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object",
             type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _field(obj: dict, key: str, *, required: bool = True, where: str = "") -> str | None:
    """A string field: required ones must be present and non-blank; optional ones may be absent/null."""
    name = f"{where}{key}"
    if key not in obj or (obj[key] is None and not required):
        if required:
            raise _Bad(f'missing field "{name}"')
        return None
    value = obj[key]
    if not isinstance(value, str):
        raise _Bad(f'"{name}" must be a string, got {_type_name(value)}')
    if required and not value.strip():
        raise _Bad(f'"{name}" is empty')
    return value


def _object(value, what: str = "record") -> dict:
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be a JSON object, got {_type_name(value)}")
    return value


# --- per-format parsers: JSON value -> Record fields (raise _Bad) ---------------------------------

def _parse_text(obj) -> dict:
    return {"text": _field(_object(obj), "text")}


def _parse_instruction(obj) -> dict:
    obj = _object(obj)
    instruction = _field(obj, "instruction")
    extra = _field(obj, "input", required=False)
    output = _field(obj, "output")
    system = _field(obj, "system", required=False)
    user = instruction + ("\n\n" + extra if extra and extra.strip() else "")
    media = _media_paths(obj, "images", "image_url") + _media_paths(obj, "audios", "input_audio")
    if media:  # LLaMA-Factory's "images" / "audios": files that follow the instruction
        user = [{"type": "text", "text": user}, *media]
    messages = ([{"role": "system", "content": system}] if system and system.strip() else [])
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return {"messages": messages}


def _media_paths(obj: dict, key: str, part: str) -> list[dict]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise _Bad(f'"{key}" must be a list of file paths (relative to the data file)')
    return [{"type": part, part: {"path": p}} for p in value]


def _parse_classification(obj) -> dict:
    obj = _object(obj)
    return {"text": _field(obj, "text"), "label": _field(obj, "label")}


def _parse_arguments(value, where: str) -> dict:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise _Bad(f'"{where}" must be a JSON object or a string holding one, got {_type_name(value)}')
    try:
        parsed = json.loads(value) if value.strip() else {}
    except json.JSONDecodeError as err:
        raise _Bad(f'"{where}" is not valid JSON ({err.msg} at column {err.colno})') from None
    if not isinstance(parsed, dict):
        raise _Bad(f'"{where}" must hold a JSON object, got {_type_name(parsed)}')
    return parsed


def _tool_calls(value, where: str) -> list[dict]:
    if not isinstance(value, list):
        raise _Bad(f'"{where}" must be a list, got {_type_name(value)}')
    calls = []
    for j, call in enumerate(value):
        at = f"{where}[{j}]"
        call = _object(call, f'"{at}"')
        if call.get("type", "function") != "function":
            raise _Bad(f'"{at}.type" must be "function", got {json.dumps(call["type"])}')
        if "function" not in call:
            raise _Bad(f'missing field "{at}.function"')
        fn = _object(call["function"], f'"{at}.function"')
        name = _field(fn, "name", where=f"{at}.function.")
        if "arguments" not in fn:
            raise _Bad(f'missing field "{at}.function.arguments"')
        out = {"type": "function",
               "function": {"name": name, "arguments": _parse_arguments(fn["arguments"], f"{at}.function.arguments")}}
        call_id = _field(call, "id", required=False, where=f"{at}.")
        if call_id is not None:
            out = {"id": call_id, **out}
        calls.append(out)
    return calls


def _message(m, i: int, key: str = "messages") -> dict:
    """Validate one OpenAI-style message and return its normalised form."""
    at = f"{key}[{i}]"
    m = _object(m, f'"{at}"')
    if "role" not in m:
        raise _Bad(f'missing field "{at}.role"')
    role = m["role"]
    if role not in ROLES:
        raise _Bad(f'unknown role {json.dumps(role)} in "{at}" (expected one of: {", ".join(ROLES)})')
    if role == "user" and isinstance(m.get("content"), list):  # content parts: text, images, recordings
        try:
            return {"role": role, "content": check_parts(m["content"], f"{at}.content")}
        except ValueError as err:
            raise _Bad(str(err)) from None
    if role in ("system", "user"):
        return {"role": role, "content": _field(m, "content", where=f"{at}.")}
    if role == "tool":
        if "content" not in m or not isinstance(m["content"], str):
            raise _Bad(f'"{at}.content" must be a string, got {_type_name(m.get("content"))}'
                       if "content" in m else f'missing field "{at}.content"')
        out = {"role": "tool", "content": m["content"]}
        for key in ("tool_call_id", "name"):
            value = _field(m, key, required=False, where=f"{at}.")
            if value is not None:
                out[key] = value
        return out
    # assistant: content and/or tool_calls
    content = _field(m, "content", required=False, where=f"{at}.")
    calls = _tool_calls(m["tool_calls"], f"{at}.tool_calls") if m.get("tool_calls") is not None else []
    if not calls and not (content and content.strip()):
        raise _Bad(f'"{at}" (assistant) has neither content nor tool_calls')
    out = {"role": "assistant", "content": content}
    if calls:
        out["tool_calls"] = calls
    if "weight" in m:  # OpenAI's fine-tuning convention: weight 0 = context only, not trained
        if m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
            raise _Bad(f'"{at}.weight" must be 0 (not trained) or 1, got {json.dumps(m["weight"])}')
        if m["weight"] == 0:
            out["weight"] = 0
    return out


def _check_conversation(messages: list[dict], key: str = "messages") -> None:
    """Rules across messages: tool results answer a call; there is something to train."""
    open_ids: set[str] | None = None  # ids of the latest assistant tool calls; None = no call yet
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            open_ids = {c["id"] for c in m.get("tool_calls", []) if "id" in c} if m.get("tool_calls") else None
        elif m["role"] == "tool":
            if open_ids is None:
                raise _Bad(f'"{key}[{i}]" is a tool message without a preceding assistant tool call')
            if open_ids and "tool_call_id" in m and m["tool_call_id"] not in open_ids:
                raise _Bad(f'"{key}[{i}].tool_call_id" {json.dumps(m["tool_call_id"])} matches no preceding '
                           f'tool call (known: {", ".join(sorted(open_ids))})')
        else:
            open_ids = None
    if not any(m["role"] == "assistant" for m in messages):
        raise _Bad("no assistant message (nothing to train)")
    if not any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
        raise _Bad("every assistant message has weight 0 (nothing to train)")


def _sharegpt(turns) -> list:
    """ShareGPT turns -> OpenAI-style messages (validated later like any other)."""
    if not isinstance(turns, list):
        raise _Bad(f'"conversations" must be a list, got {_type_name(turns)}')
    messages = []
    for i, t in enumerate(turns):
        at = f"conversations[{i}]"
        t = _object(t, f'"{at}"')
        if "from" not in t:
            raise _Bad(f'missing field "{at}.from"')
        source = t["from"]
        if source not in SHAREGPT_ROLES:
            raise _Bad(f'unknown role {json.dumps(source)} in "{at}.from" '
                       f'(expected one of: {", ".join(SHAREGPT_ROLES)})')
        value = _field(t, "value", required=source not in ("tool", "observation", "function_response"),
                       where=f"{at}.") or ""
        if source == "function_call":
            call = _parse_arguments(value, f"{at}.value")
            if "name" not in call:
                raise _Bad(f'"{at}.value" must hold {{"name": ..., "arguments": ...}}')
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"type": "function", "function": {"name": call["name"], "arguments": call.get("arguments", {})}}]})
        else:
            messages.append({"role": SHAREGPT_ROLES[source], "content": value})
    return messages


def _parse_chat(obj) -> dict:
    obj = _object(obj)
    if "messages" in obj:
        key, raw = "messages", obj["messages"]
        if not isinstance(raw, list):
            raise _Bad(f'"messages" must be a list, got {_type_name(raw)}')
    elif "conversations" in obj:
        key, raw = "conversations", _sharegpt(obj["conversations"])
    else:
        raise _Bad('missing field "messages" (or ShareGPT "conversations")')
    if not raw:
        raise _Bad(f'"{key}" is empty')
    messages = [_message(m, i, key) for i, m in enumerate(raw)]
    _check_conversation(messages, key)
    out = {"messages": messages}
    if obj.get("tools") is not None:
        out["tools"] = _tool_schemas(obj["tools"])
    return out


def _tool_schemas(value) -> list[dict]:
    """OpenAI `tools`: [{"type": "function", "function": {"name", "description"?, "parameters"?}}]."""
    if not isinstance(value, list):
        raise _Bad(f'"tools" must be a list, got {_type_name(value)}')
    for j, t in enumerate(value):
        t = _object(t, f'"tools[{j}]"')
        fn = _object(t.get("function"), f'"tools[{j}].function"')
        _field(fn, "name", where=f"tools[{j}].function.")
        if not isinstance(fn.get("parameters", {}), dict):
            raise _Bad(f'"tools[{j}].function.parameters" must be a JSON schema object')
    return value


PARSERS = {"text": _parse_text, "instruction": _parse_instruction,
           "classification": _parse_classification, "chat": _parse_chat}


# --- files ---------------------------------------------------------------------------------------

def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        raise AgentmillError(f"{path}: no such file")
    if not path.is_file():
        raise AgentmillError(f"{path}: not a file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise AgentmillError(f"{path}:{line}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return text.splitlines()


def _text_documents(path: Path, lines: list[str]) -> list[Record]:
    """Plain text: documents are separated by one or more blank lines."""
    records, current, first = [], [], 0
    for lineno, line in enumerate(lines + [""], start=1):
        if line.strip():
            if not current:
                first = lineno
            current.append(line)
        elif current:
            records.append(Record(source=f"{path}:{first}", text="\n".join(current)))
            current = []
    return records


def read_records(path: str | Path, fmt: str, media=None) -> list[Record]:
    """Read and validate every record of `path` in format `fmt`; images and recordings in records
    are read into text with `media` (MediaBackends; default engines when None; data/media.py).

    Raises AgentmillError for a missing file, an unknown format or an empty dataset, and
    DataError listing every bad record as "FILE:LINE: reason".
    """
    path = Path(path)
    if fmt not in FORMATS:
        close = difflib.get_close_matches(str(fmt), FORMATS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise AgentmillError(f"{path}: unknown data format '{fmt}'{hint} (known: {', '.join(FORMATS)})")
    lines = _read_lines(path)
    if fmt == "text" and path.suffix.lower() != ".jsonl":
        records = _text_documents(path, lines)
    else:
        records, problems = [], []
        parse = PARSERS[fmt]
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise _Bad(f"invalid JSON ({err.msg} at column {err.colno}); "
                               "expected one JSON object per line") from None
                records.append(Record(source=f"{path}:{lineno}", **parse(obj)))
            except _Bad as bad:
                problems.append(f"{path}:{lineno}: {bad}")
        with_media = [r for r in records if has_media(r.messages)]
        if with_media and not problems:  # read files only for a file whose records are otherwise sound
            problems += read_record_media(with_media, path.parent, media)
        if problems:
            raise DataError(problems)
    if not records:
        raise AgentmillError(f"{path}: no records (empty dataset)")
    return records


def classification_messages(text: str, labels: list[str], label: str | None = None) -> list[dict]:
    """The conversation used to train and score a classifier: system lists the labels, user is the text."""
    messages = [
        {"role": "system", "content": f"Classify the message into one of: {', '.join(labels)}. "
                                      "Answer with the label only."},
        {"role": "user", "content": text},
    ]
    if label is not None:
        messages.append({"role": "assistant", "content": label})
    return messages


def apply_task_prompt(records: list[Record], fmt: str, system: str | None, tools: list[dict] | None) -> None:
    """Give chat/instruction records a task's system prompt (unless they have one) and tool schemas
    (chat records without their own `tools`). Training, eval and the agent all call this, so a
    task is prompted the same way everywhere."""
    if fmt not in ("chat", "instruction"):
        return
    for r in records:
        if system and r.messages and r.messages[0]["role"] != "system":
            r.messages = [{"role": "system", "content": system}] + r.messages
        if tools and fmt == "chat" and r.tools is None:
            r.tools = tools
