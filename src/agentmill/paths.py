"""Where agentmill keeps its cache (converted base models, indexes)."""

import os
from pathlib import Path


def home() -> Path:
    """AGENTMILL_HOME, default ~/.cache/agentmill."""
    return Path(os.environ.get("AGENTMILL_HOME", Path.home() / ".cache" / "agentmill")).expanduser()


def write_json_atomic(path: Path, data) -> None:
    """Write JSON so that readers (and a resumed run) never see a half-written file."""
    import json

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
