"""`create_app`: the FastAPI application over one loaded run (see the package docstring for routes)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from agentmill.media import MediaBackends
from agentmill.media.store import MediaStore
from agentmill.serve import agent_routes, audio_routes, contract, openai_routes
from agentmill.serve.auth import RequireKey
from agentmill.serve.catalog import Catalog
from agentmill.serve.engine import Engine
from agentmill.serve.errors import BodyLimit, install_error_handlers
from agentmill.serve.limits import Limiter
from agentmill.serve.prompts import context_length
from agentmill.serve.sessions import SessionPool
from agentmill.serve.settings import ServeSettings
from agentmill.serve.state import ServerState

STATIC = Path(__file__).parent / "static"


def create_app(run, tools=None, store=None, settings: ServeSettings | None = None) -> FastAPI:
    """The app serving `run` (a loaded RunModel). `tools`: the agent's server-side tools (default:
    the run's, from its manifest); `store`: the session store of the agent routes (None: those
    routes answer 400). The engine thread starts with the first request and stops with the app."""
    from agentmill.tools.setup import registry_for_run

    settings = settings or ServeSettings()
    tools = tools if tools is not None else registry_for_run(run)
    engine = Engine(run, max_batch=settings.max_batch, max_waiting=settings.max_waiting,
                    decoder=settings.decoder)
    context = context_length(run, settings)
    sessions = None if store is None else SessionPool(
        run, tools, store, engine, max_new_tokens=min(settings.agent_max_new_tokens, settings.max_tokens_cap),
        context_tokens=context, cached=settings.agent_sessions_cached)
    state = ServerState(run=run, tools=tools, store=store, settings=settings, engine=engine, catalog=Catalog(run),
                        limiter=Limiter(settings.rate_per_minute, settings.concurrency_per_key),
                        sessions=sessions, context=context, media=MediaBackends(settings.media),
                        media_store=MediaStore(settings.media_dir))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if sessions is not None:
            sessions.close()
        engine.close()

    app = FastAPI(title="agentmill", summary="OpenAI-compatible API and agent of an agentmill run",
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.agentmill = state
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequireKey, keys=settings.api_keys)  # the outermost: keys before anything else
    app.include_router(openai_routes.router)
    app.include_router(agent_routes.router)
    app.include_router(audio_routes.router)
    app.include_router(openai_routes.public)
    app.openapi = lambda: contract.openapi(app, state)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index():
        page = STATIC / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html")
        return HTMLResponse("<!doctype html><title>agentmill</title><p>agentmill is serving "
                            f"{run.manifest.get('name', 'a run')}: the API is at <code>/v1</code>.</p>")

    return app
