"""What the server allows: keys, limits and batching, with documented defaults.

Every limit is a field of `ServeSettings`; `agentmill serve` sets the keys and the store, the
rest keep their defaults (tests and embedders pass their own).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from typing import Literal

from pydantic import BaseModel, Field

from agentmill.media import MediaSettings

KEYS_ENV = "AGENTMILL_API_KEYS"  # comma-separated API keys, added to --api-key


class ServeSettings(BaseModel):
    api_keys: list[str] = Field(default_factory=list)  # empty: no auth (loopback only, see `check_bind`)
    max_body_bytes: int = 36 * 1024 * 1024  # request body (413 above): room for a 25 MB media file in base64
    max_tokens_cap: int = 1024  # the largest max_tokens a request may ask for (400 above)
    context_tokens: int | None = None  # prompt + completion limit; default: the model's max_position_embeddings
    default_temperature: float = 0.0  # greedy unless the request says otherwise (OpenAI's default is 1)
    rate_per_minute: int = 600  # requests per key (or client address without keys) per 60 s (429 above)
    concurrency_per_key: int = 32  # requests of one key in flight at once (429 above)
    max_batch: int = 16  # rows decoded together in one forward pass
    max_waiting: int = 512  # generations queued behind the batch (429 "server busy" above)
    # what decodes: the fast decoder with int8 weights where measured faster here (auto), with int8 or
    # dense weights, or the model's own forward ("model"); see model/decoder.py's build_weights
    decoder: Literal["auto", "int8", "dense", "model"] = "auto"
    agent_max_new_tokens: int = 256  # per generation of an agent turn
    agent_sessions_cached: int = 64  # agents kept in memory; older ones are resumed from the store
    # speech and image input, speech output: engines and limits (media/settings.py)
    media: MediaSettings = Field(default_factory=MediaSettings)
    media_dir: Path | None = None  # the agent's original images and recordings; default $AGENTMILL_HOME/media
    # what clients send (chat messages, prompts, agent messages) and agent answers, logged at INFO on
    # the "agentmill.serve.content" logger: for debugging only; off, no log line carries content
    log_content: bool = False


def keys_from_env(keys: list[str] | None = None) -> list[str]:
    """--api-key values plus AGENTMILL_API_KEYS, without blanks or duplicates."""
    found = list(keys or []) + os.environ.get(KEYS_ENV, "").split(",")
    return list(dict.fromkeys(k.strip() for k in found if k.strip()))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_keys: list[str], insecure_public: bool) -> None:
    """Without API keys only a loopback address is allowed, unless the user insists."""
    from agentmill.errors import AgentmillError

    if api_keys or insecure_public or is_loopback(host):
        return
    raise AgentmillError(
        f"refusing to serve on {host} without an API key: anyone who can reach this address could use the "
        f"model and its tools. Pass --api-key KEY (or set {KEYS_ENV}), bind to 127.0.0.1, or pass "
        f"--insecure-public if this network is trusted.")
