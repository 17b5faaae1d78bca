"""`agentmill serve`: check the bind address, load the run, serve the app with uvicorn.

uvicorn runs on a thread of its own and the engine's worker on the main thread, which loaded
the model: torch work on a second thread is ~2x slower per op here (serve/engine.py says why).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from agentmill.serve.errors import log
from agentmill.serve.settings import ServeSettings, check_bind, keys_from_env


def serve(run_dir: Path, host: str = "127.0.0.1", port: int = 8000, api_keys: list[str] | None = None,
          insecure_public: bool = False, db: Path | None = None, console=None, decoder: str = "auto",
          settings: ServeSettings | None = None) -> None:
    """`settings`: the limits to serve with (default: ServeSettings's); the keys, the decoder and
    the run's media settings are set from the other arguments."""
    keys = keys_from_env(api_keys)
    check_bind(host, keys, insecure_public)  # before the model loads: a refusal is immediate
    import uvicorn

    from agentmill.model.run import RunModel
    from agentmill.serve.app import create_app
    from agentmill.store import open_store

    from agentmill.media.settings import media_settings_of

    run = RunModel.load(run_dir)
    store = open_store(db)
    problem = store.cannot_write()
    if problem is not None:  # it serves anyway: reads work, each write answers 503 until the store can write
        log.warning("the session store %s cannot take writes: %s; sessions can be read, each write answers 503 "
                    "(store_unavailable) until it can", getattr(store, "path", db), problem)
    settings = (settings or ServeSettings()).model_copy(update={"api_keys": keys, "decoder": decoder,
                                                                "media": media_settings_of(run)})
    app = create_app(run, store=store, settings=settings)
    if console is not None:
        shown = "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0") else host
        console.print(f"serving [bold]{run.manifest.get('name', run_dir)}[/] on http://{shown}:{port} "
                      f"(web page at /, OpenAI API at /v1; models: {', '.join(app.state.agentmill.catalog.names())})"
                      + ("" if keys else " · no API key: loopback only"))
        console.print(f"[dim]decoding with the {app.state.agentmill.engine.batch_kind}[/]", highlight=False)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    http = threading.Thread(target=server.run, name="agentmill-http", daemon=True)

    def shut_down(signum, frame):  # uvicorn cannot take signals off the main thread: we do
        server.force_exit = server.should_exit
        server.should_exit = True

    previous = {sig: signal.signal(sig, shut_down) for sig in (signal.SIGINT, signal.SIGTERM)}
    app.state.agentmill.engine.hold()
    http.start()
    try:
        # until the app's shutdown closes the engine, or the server thread ends (e.g. port taken)
        app.state.agentmill.engine.run_here(stop=lambda: not http.is_alive())
    finally:
        server.should_exit = True
        http.join(timeout=30)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        store.close()
    if not server.started:
        from agentmill.errors import AgentmillError

        raise AgentmillError(f"could not serve on {host}:{port} (uvicorn's message is above)")
