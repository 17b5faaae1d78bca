"""The original media files, content-addressed under ``AGENTMILL_HOME/media``: a stored message
references a file by its SHA-256, so a reloaded conversation shows the image or recording
again, and the same file sent twice is kept once. Writes are atomic (temporary file, rename)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from agentmill.paths import home

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class MediaStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else home() / "media"

    def path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        final = self.path(digest)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes | None:
        try:
            return self.path(digest).read_bytes()
        except (FileNotFoundError, ValueError):
            return None
