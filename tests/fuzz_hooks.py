"""Schemathesis hooks of the contract fuzz (tests/test_contract.py, `make fuzz`): the rules of the
API that a JSON schema cannot state. A schema-valid (positive) case is sent the way a client that
follows those rules would send it; a negative case is sent exactly as generated.

- Media parts carry real bytes (a small PNG, a short WAV) instead of made-up base64. (An upload to
  /v1/audio/transcriptions or /translations cannot be given one: the hook would have to put bytes
  where the schema has a string, so schemathesis.toml leaves its positive cases unchecked.)
- An agent message whose parts are all blank text gets a word: a message must say something.
- The tools of a chat request have distinct names and parameters that are a JSON schema; a named
  `tool_choice` names one of them.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import wave

import schemathesis
from schemathesis.generation import GenerationMode


def _png() -> bytes:
    from PIL import Image, ImageDraw

    picture = Image.new("L", (96, 32), 255)
    ImageDraw.Draw(picture).text((4, 8), "Total 42", fill=0)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def _wav(seconds: float = 0.25, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(3000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return out.getvalue()


BODY_LIMIT = 65_536  # the fuzzed server's max_body_bytes (tests/test_contract.py)
PNG, WAV = _png(), _wav()
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
WAV_B64 = base64.b64encode(WAV).decode()


def _real_media(part: dict) -> dict:
    kind = part.get("type")
    if kind == "image_url":
        image = part["image_url"]
        return {**part, "image_url": {**image, "url": PNG_URL} if isinstance(image, dict) else PNG_URL}
    if kind == "input_audio":
        return {**part, "input_audio": {**part["input_audio"], "data": WAV_B64, "format": "wav"}}
    if kind == "file":
        return {**part, "file": {**part["file"], "file_data": PNG_URL}}
    return part


def _with_real_media(content):
    return [_real_media(p) if isinstance(p, dict) else p for p in content] if isinstance(content, list) else content


def _with_valid_parameters(tool: dict) -> None:
    """`tool`'s parameters kept where the server's own check takes them, else an object taking nothing."""
    from agentmill.serve.errors import ApiError
    from agentmill.serve.prompts import check_tool_schemas

    try:
        check_tool_schemas([tool])
    except ApiError:
        tool["function"]["parameters"] = {"type": "object", "properties": {}}


def _rules_of_tools(body: dict) -> None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            body["tool_choice"] = "auto"
        return
    kept = {}
    for tool in tools:
        _with_valid_parameters(tool)
        kept.setdefault(tool["function"]["name"], tool)
    body["tools"] = list(kept.values())
    if isinstance(choice, dict) and choice["function"]["name"] not in kept:
        choice["function"]["name"] = next(iter(kept))


@schemathesis.hook
def filter_body(context, body) -> bool:
    import json

    text = json.dumps(body, default=str)
    media = sum(text.count(f'"{kind}"') for kind in ("image_url", "input_audio", "file"))
    return len(text.encode()) + media * len(WAV_B64) < BODY_LIMIT  # with the real media before_call puts in


@schemathesis.hook
def before_call(context, case, kwargs):
    meta = case.meta
    if meta is None or any(c.mode != GenerationMode.POSITIVE for c in [meta.generation, *meta.components.values()]):
        return
    path, body = case.operation.path, case.body
    if not isinstance(body, dict):
        return
    if path == "/v1/chat/completions":
        for message in body.get("messages") or []:
            message["content"] = _with_real_media(message.get("content"))
        _rules_of_tools(body)
    elif path.endswith("/messages"):
        content = body["content"] = _with_real_media(body.get("content"))
        if isinstance(content, list) and not any(p.get("type") != "text" or p.get("text", "").strip()
                                                 for p in content):
            content.append({"type": "text", "text": "hello"})  # a message must say something
