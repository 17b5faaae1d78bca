"""Media parts of a chat request read into text before the prompt is built (media/parts.py).

Extraction runs on the engine's thread between decoding steps: OCR and speech recognition use
every core, and torch slows down badly when another thread computes beside it (README, Threads).
"""

from __future__ import annotations

import asyncio


def _read_all(backends, messages) -> list:
    from agentmill.media.parts import read_content

    found = []
    for i, message in enumerate(messages):
        content, extracted = read_content(message.content, backends, f"messages.[{i}].content")
        if extracted:
            message.content = content
            found.extend(extracted)
    return found


def has_media(messages) -> bool:
    return any(isinstance(m.content, list) and any(isinstance(p, dict) and p.get("type") != "text" for p in m.content)
               for m in messages)


async def read_request_media(state, messages) -> list:
    """Replace each media part of `messages` (pydantic ChatMessage) by its labelled text, in place;
    return what was extracted (media.parts.Extracted), in order."""
    if not has_media(messages):
        return []
    return await asyncio.wrap_future(state.engine.call(lambda: _read_all(state.media, messages)))


def _read_agent_parts(state, parts: list) -> tuple[str, list]:
    from agentmill.media.parts import Extracted, read_parts

    read = read_parts(parts, state.media, "content")
    found = [p for p in read if isinstance(p, Extracted)]
    for item in found:  # the originals are kept before the message that references them is stored
        state.media_store.put(item.data)
    return "\n".join(p for p in read if isinstance(p, str) and p), found


async def read_agent_message(state, content) -> tuple[str, list]:
    """(typed text, media read from it) of an agent message: text, or OpenAI content parts."""
    if isinstance(content, str):
        return content, []
    return await asyncio.wrap_future(state.engine.call(lambda: _read_agent_parts(state, content)))
