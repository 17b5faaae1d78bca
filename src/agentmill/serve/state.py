"""What every route shares: the run, its tools and store, the settings and the serving machinery."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request


@dataclass
class ServerState:
    run: object  # RunModel
    tools: object  # ToolRegistry (server-side tools of the agent routes)
    store: object | None  # SessionStore
    settings: object  # ServeSettings
    engine: object  # Engine
    catalog: object  # Catalog
    limiter: object  # Limiter
    sessions: object | None  # SessionPool (None without a store)
    context: int  # prompt + completion tokens the model takes
    media: object  # MediaBackends (speech and image engines, loaded on first use)
    media_store: object  # MediaStore (the agent's original media files)


def state_of(request: Request) -> ServerState:
    return request.app.state.agentmill
