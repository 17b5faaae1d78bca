"""What an engine read from a file, cached by the file's SHA-256 and the engine's settings, so
preparing a dataset again (a resumed run, another stage, eval) does not OCR or transcribe its
images and recordings again. Entries live in ``AGENTMILL_HOME/media-cache`` as small JSON files,
written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from agentmill.paths import home


# Raised whenever how an engine is driven changes what it reads (2: speech decoded without
# timestamp tokens), so no entry from before is served as if it were current.
READ_VERSION = 2


def _engine_key(backends, kind: str) -> str:
    s = backends.settings
    if kind == "image":
        return f"v{READ_VERSION}-{s.image}-{s.ocr_lang}-{s.image_model or ''}"
    return (f"v{READ_VERSION}-{s.speech}-{s.speech_model or 'embedded-tiny.en'}-{s.speech_compute_type}-"
            f"{s.speech_prompt or ''}")


def cached_read(backends, data: bytes, kind: str, name: str, root: Path | None = None) -> dict:
    """{"text", "engine", "facts"} of an image (`kind` "image") or recording ("audio")."""
    digest = hashlib.sha256(data).hexdigest()
    engine = hashlib.sha256(_engine_key(backends, kind).encode()).hexdigest()[:16]
    path = (root or home() / "media-cache") / engine / digest[:2] / f"{digest}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    from agentmill.media.parts import read_media

    read = read_media(backends, kind, data, error_name=name)
    entry = {"text": read.text, "engine": read.engine, "facts": read.facts}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(handle, "w") as out:
        json.dump(entry, out)
    os.replace(tmp, path)
    return entry
