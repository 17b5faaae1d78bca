"""Where agentmill keeps its cache (converted base models, indexes)."""

import os
from pathlib import Path


def home() -> Path:
    """AGENTMILL_HOME, default ~/.cache/agentmill."""
    return Path(os.environ.get("AGENTMILL_HOME", Path.home() / ".cache" / "agentmill")).expanduser()
