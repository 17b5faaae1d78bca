"""Images and recordings in training data, read into the text the model trains on.

A `chat` record's user message may hold OpenAI content parts (``text``, ``image_url``,
``input_audio``, ``file``) whose file is a path relative to the data file — ``image_url.url``
without a scheme, or ``path`` in any part — or inline data (a data URL, ``input_audio.data``). An
`instruction` record may list ``images`` and ``audios`` (paths, LLaMA-Factory's convention),
which follow the instruction. Each is read with the same engines the agent uses (media/) into
the same labelled text, ``[image invoice-03.jpg, OCR] ...``, so training and run time see the
same thing; results are cached by file hash (media/cache.py). A file that is missing, unreadable
or yields no text is a "FILE:LINE: reason" problem like any other bad record.
"""

from __future__ import annotations

from pathlib import Path

MEDIA_TYPES = ("image_url", "input_audio", "file")


def has_media(messages: list[dict] | None) -> bool:
    return any(isinstance(m.get("content"), list) for m in messages or [])


def check_parts(parts: list, at: str) -> list:
    """A message's content parts, checked for shape (the files are read later). Raises ValueError."""
    for j, part in enumerate(parts):
        where = f'"{at}[{j}]"'
        if not isinstance(part, dict) or "type" not in part:
            raise ValueError(f"{where} must be an object with a type")
        kind = part["type"]
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise ValueError(f'{where} (text) needs a string "text"')
        elif kind in MEDIA_TYPES:
            spec = part.get(kind)
            if not isinstance(spec, dict) and not (kind == "image_url" and isinstance(spec, str)):
                raise ValueError(f'{where} ({kind}) needs an object "{kind}"')
        else:
            raise ValueError(f"{where} has type {kind!r}; content parts are text, image_url, input_audio, file")
    return parts


def _part_bytes(part: dict, base: Path) -> tuple[bytes, str, str]:
    """(file bytes, display name, kind "image" | "audio") of a media part."""
    from agentmill.media import MediaError

    kind = part["type"]
    spec = part[kind] if isinstance(part[kind], dict) else {"url": part[kind]}
    ref = spec.get("path") or (spec.get("url") if kind == "image_url" else None) or (
        spec.get("filename") if kind == "file" and not spec.get("file_data") else None)
    inline = spec.get("file_data") if kind == "file" else spec.get("data") if kind == "input_audio" else None
    if isinstance(ref, str) and ref.startswith("data:"):
        ref, inline = None, ref
    media_kind = "audio" if kind == "input_audio" else "image"
    if inline:
        from agentmill.media.parts import decode_inline

        return decode_inline(inline, "inline data")[0], str(spec.get("filename") or ""), media_kind
    if not isinstance(ref, str) or not ref:
        raise MediaError(f"a {kind} part needs a file path (path, or image_url.url) or inline data")
    if "://" in ref:
        raise MediaError(f"{ref}: training data refers to files by path, not URL")
    file = base / ref
    try:
        return file.read_bytes(), Path(ref).name, media_kind
    except FileNotFoundError:
        raise MediaError(f"{ref}: no such file (paths are relative to the data file)") from None
    except OSError as err:
        raise MediaError(f"{ref}: cannot read the file ({err.strerror or err})") from None


def read_parts(parts: list, base: Path, backends) -> str:
    """Content parts as the one string the model reads (text parts as they are, media labelled)."""
    from agentmill.media import MediaError
    from agentmill.media.cache import cached_read
    from agentmill.media.parts import NO_TEXT, Extracted

    pieces = []
    for j, part in enumerate(parts):
        if part["type"] == "text":
            pieces.append(part["text"])
            continue
        try:
            data, name, kind = _part_bytes(part, base)
            read = cached_read(backends, data, kind, name or kind)
        except MediaError as err:
            raise MediaError(f"content[{j}]: {err}") from None
        if not read["text"].strip():
            raise MediaError(f"content[{j}]: {name or kind}: {NO_TEXT[kind].strip('()')}, nothing to train on")
        pieces.append(Extracted(kind, name, read["engine"], read["text"], data).label())
    return "\n".join(p for p in pieces if p)


def read_record_media(records, base: Path, backends=None) -> list[str]:
    """Replace every media part of `records` by its labelled text, in place; the problems found,
    as "FILE:LINE: messages[i].content[j]: reason"."""
    from agentmill.media import MediaBackends, MediaError

    backends = backends or MediaBackends()
    problems = []
    for record in records:
        for i, message in enumerate(record.messages or []):
            if not isinstance(message.get("content"), list):
                continue
            try:
                record.media |= any(p["type"] != "text" for p in message["content"])
                message["content"] = read_parts(message["content"], base, backends)
            except MediaError as err:
                problems.append(f"{record.source}: messages[{i}].{err}")
    return problems
