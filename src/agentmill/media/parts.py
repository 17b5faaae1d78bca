"""OpenAI content parts with media, as the labelled text the model reads.

A user message's `image_url`, `input_audio` and `file` parts are read with the server's
backends and replaced by visible text, e.g. ``[image invoice.png, OCR] Total due: $1,234.56``
or ``[audio, transcript] Can I pay this from account 4821?``: the model (a text model) reads
that, and the client gets back what was extracted (`Extracted.summary`). A part that cannot be
read is a MediaError naming it (``messages.[i].content.[j]``), never dropped in silence.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass, field

from agentmill.media.errors import MediaError

NO_TEXT = {"image": "(no text found in the image)", "audio": "(no speech found in the recording)"}


@dataclass
class Extracted:
    kind: str  # "image" or "audio"
    name: str  # the file name, when the part gave one
    engine: str  # "OCR", "vision model" or "transcript"
    text: str
    data: bytes = field(repr=False)
    media_type: str = ""
    facts: dict = field(default_factory=dict)
    seconds: float = 0.0  # time taken to extract

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def label(self) -> str:
        head = f"[{self.kind}{' ' + self.name if self.name else ''}, {self.engine}]"
        return f"{head} {self.text}" if self.text.strip() else f"{head} {NO_TEXT[self.kind]}"

    def summary(self) -> dict:
        return {"type": self.kind, "name": self.name or None, "engine": self.engine, "text": self.text,
                "sha256": self.sha256, "media_type": self.media_type, "bytes": len(self.data),
                "seconds": round(self.seconds, 3), **self.facts}


def read_media(backends, kind: str, data: bytes, *, name: str = "", media_type: str = "", error_name: str = "",
               started: float | None = None) -> Extracted:
    """`data`, an image (`kind` "image") or a recording ("audio"), read with `backends`; `name` is
    the label's file name, `error_name` what errors call the file; `started`: when the work on it
    began (time.perf_counter(), default now), for `Extracted.seconds`."""
    started = time.perf_counter() if started is None else started
    if kind == "image":
        found = backends.read_image(data, name=error_name or name or "image")
        return Extracted("image", name, found.engine, found.text, data, media_type, found.facts(),
                         time.perf_counter() - started)
    heard = backends.transcribe(data, name=error_name or name or "audio")
    return Extracted("audio", name, "transcript", heard.text, data, media_type,
                     {"duration": heard.duration, "language": heard.language}, time.perf_counter() - started)


def _b64(data: str, where: str) -> bytes:
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{where}: the data is not valid base64").at(where) from None


def decode_inline(data: str, where: str) -> tuple[bytes, str]:
    """(bytes, declared type or "") of inline media: a ``data:TYPE;base64,...`` URL or bare base64."""
    if not data.startswith("data:"):
        return _b64(data, where), ""
    head, sep, payload = data.partition(",")
    if not sep or ";base64" not in head:
        raise MediaError(f"{where}: a data URL must be base64 (data:TYPE;base64,...)").at(where)
    return _b64(payload, where), head[5:].split(";")[0]


def _image_bytes(part: dict, backends, where: str) -> tuple[bytes, str]:
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str) or not url:
        raise MediaError(f"{where}: image_url needs a url (a data URL or http(s))").at(where)
    if url.startswith("data:"):
        return decode_inline(url, where)
    if not backends.settings.fetch_urls:
        raise MediaError(f"{where}: this server does not fetch image URLs (media.fetch_urls is off); send the "
                         f"image inline as a data URL (data:image/png;base64,...)", code="url_fetch_disabled").at(where)
    from agentmill.media.fetch import fetch

    s = backends.settings
    try:
        return fetch(url, s.max_file_bytes, s.fetch_timeout_s)
    except MediaError as err:
        raise err.at(where) from None


def _file_bytes(part: dict, where: str) -> tuple[bytes, str, str]:
    spec = part.get("file") or {}
    data = spec.get("file_data")
    if not isinstance(data, str) or not data:
        raise MediaError(f"{where}: a file part needs file_data (uploaded file ids are not supported here)").at(where)
    name = str(spec.get("filename") or "")
    return *decode_inline(data, where), name


def extract_part(part: dict, backends, where: str) -> Extracted:
    """One media part read with `backends` (MediaBackends)."""
    from agentmill.media.image import image_format

    kind = part.get("type")
    started = time.perf_counter()
    try:
        if kind == "image_url":
            data, declared = _image_bytes(part, backends, where)
            return read_media(backends, "image", data, media_type=image_format(data) or declared, started=started)
        if kind == "input_audio":
            spec = part.get("input_audio") or {}
            if not isinstance(spec.get("data"), str):
                raise MediaError(f"{where}: input_audio needs data (base64) and format")
            return read_media(backends, "audio", decode_inline(spec["data"], where)[0],
                              media_type=f"audio/{spec.get('format') or 'unknown'}", started=started)
        if kind == "file":
            data, declared, name = _file_bytes(part, where)
            media_type = image_format(data)
            if media_type is None:
                raise MediaError(f"{where}: the file{' ' + name if name else ''} is not an image this server can "
                                 f"read ({declared or 'unknown type'}); file parts take PNG, JPEG, WebP, GIF, BMP "
                                 f"or TIFF images", code="unsupported_file")
            return read_media(backends, "image", data, name=name, media_type=media_type, error_name=name or "file",
                              started=started)
    except MediaError as err:
        if err.param is None and not str(err).startswith(where):
            err.args = (f"{where}: {err}",)
        raise err.at(where) from None
    raise MediaError(f"{where}: content parts of type {kind!r} are not supported (text, image_url, input_audio "
                     f"and file are)", code="unsupported_content_part").at(where)


def read_parts(parts: list, backends, where: str) -> list:
    """Each part of `parts` in order: a text part as its text, a media part as its `Extracted`."""
    out = []
    for j, part in enumerate(parts):
        here = f"{where}.[{j}]" if where else f"[{j}]"
        if not isinstance(part, dict):
            raise MediaError(f"{here}: a content part must be an object").at(here)
        out.append(str(part.get("text", "")) if part.get("type") == "text" else extract_part(part, backends, here))
    return out


def read_content(content, backends, where: str) -> tuple[str | list | None, list[Extracted]]:
    """`content` with every media part replaced by its labelled text (text parts and strings as
    they are), and what was extracted. Without media parts the content comes back unchanged."""
    if not isinstance(content, list) or all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return content, []
    read = read_parts(content, backends, where)
    pieces = [p.label() if isinstance(p, Extracted) else p for p in read]
    return "\n".join(p for p in pieces if p), [p for p in read if isinstance(p, Extracted)]


def compose(text: str, extracted: list[Extracted]) -> str:
    """A message's text as the model reads it: the typed text, then each item's labelled text."""
    return "\n".join(p for p in [text, *(e.label() for e in extracted)] if p)


def plain(text: str, extracted: list[Extracted]) -> str:
    """The same without labels (what routing and classification read)."""
    return "\n".join(p for p in [text, *(e.text for e in extracted)] if p.strip())


def extract_file(path, backends) -> Extracted:
    """An image or recording on disk, read by its content (a MediaError naming the file otherwise)."""
    from pathlib import Path

    from agentmill.media.image import image_format

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MediaError(f"{path}: cannot read the file ({err.strerror or err})") from None
    backends.check_size(data, str(path))
    started = time.perf_counter()
    media_type = image_format(data)
    if media_type is not None:
        return read_media(backends, "image", data, name=path.name, media_type=media_type, error_name=str(path),
                          started=started)
    try:
        return read_media(backends, "audio", data, name=path.name, media_type="audio/" + (path.suffix[1:] or "unknown"),
                          error_name=str(path), started=started)
    except MediaError as err:
        if err.code != "invalid_media" or "not an audio file" not in str(err):
            raise
        raise MediaError(f"{path}: neither an image (PNG, JPEG, WebP, GIF, BMP, TIFF) nor a recording (WAV, MP3, "
                         f"FLAC, Ogg, WebM, M4A) that can be read") from None
