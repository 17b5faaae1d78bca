"""`agentmill serve`: check the bind address, load the run, serve the app with uvicorn."""

from __future__ import annotations

from pathlib import Path

from agentmill.serve.settings import ServeSettings, check_bind, keys_from_env


def serve(run_dir: Path, host: str = "127.0.0.1", port: int = 8000, api_keys: list[str] | None = None,
          insecure_public: bool = False, db: Path | None = None, console=None) -> None:
    keys = keys_from_env(api_keys)
    check_bind(host, keys, insecure_public)  # before the model loads: a refusal is immediate
    import uvicorn

    from agentmill.model.run import RunModel
    from agentmill.serve.app import create_app
    from agentmill.store import open_store

    run = RunModel.load(run_dir)
    store = open_store(db)
    app = create_app(run, store=store, settings=ServeSettings(api_keys=keys))
    if console is not None:
        shown = "localhost" if host in ("127.0.0.1", "::1", "0.0.0.0") else host
        console.print(f"serving [bold]{run.manifest.get('name', run_dir)}[/] on http://{shown}:{port} "
                      f"(web page at /, OpenAI API at /v1; models: {', '.join(app.state.agentmill.catalog.names())})"
                      + ("" if keys else " · no API key: loopback only"))
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        store.close()
