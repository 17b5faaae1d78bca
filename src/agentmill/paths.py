"""Where agentmill keeps its cache (converted base models, indexes)."""

import os
from pathlib import Path


def home() -> Path:
    """AGENTMILL_HOME, default ~/.cache/agentmill."""
    return Path(os.environ.get("AGENTMILL_HOME", Path.home() / ".cache" / "agentmill")).expanduser()


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that readers (and a resumed run) never see it half-written."""
    path = Path(path)
    # one temporary name per process: two processes writing the same file (a shared cache)
    # must not rename each other's half-written copy
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data) -> None:
    import json

    write_text_atomic(path, json.dumps(data, indent=2))
