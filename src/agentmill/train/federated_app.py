"""The federated stage deployed with Flower's Deployment Engine instead of simulated on one machine.

`agentmill federate RECIPE --app DIR` writes a Flower App: a pyproject.toml naming this module's
ServerApp and the stage's ClientApp (train/federated.py), with the recipe, its overrides and the
run directory in the app's run config. Started with `flwr run DIR SUPERLINK`, the ServerApp runs
the recipe's pipeline on the server's machine, and the federated stage sends its rounds to the
SuperNodes connected to the SuperLink, one per data owner, each on its own machine with its own
data file (`--node-config 'client="north" data-path="/data/north.jsonl"'`). The clients train on
the base model they load themselves, so the federated stage must be the recipe's first.
"""

from __future__ import annotations

import json
from pathlib import Path

from agentmill.config import Recipe
from agentmill.errors import AgentmillError

PACKAGE = "agentmill_app"  # the app folder's package: a module of four lines that imports the apps below

PYPROJECT = """\
# A Flower App written by `agentmill federate {recipe_name} --app`: run it with
#   flwr run {app} <superlink>        (see README.md beside this file)
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{project}"
version = "1.0.0"
description = "agentmill: the federated stage of {recipe_name}"
license = "Apache-2.0"
dependencies = ["agentmill"]

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "agentmill"

[tool.flwr.app.components]
serverapp = "{package}.apps:server"
clientapp = "{package}.apps:client"

[tool.flwr.app.config]
recipe = {recipe}
overrides = {overrides}
out = {out}
"""

APP_MODULE = '''"""The ServerApp and ClientApp of agentmill's federated stage (agentmill.train.federated_app)."""

from agentmill.train.federated import client_app
from agentmill.train.federated_app import server_app

server = server_app()
client = client_app()
'''


def server_app():
    """Flower's ServerApp: the recipe's pipeline, its federated rounds sent through the SuperLink."""
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp
    from rich.console import Console

    from agentmill.config import load_recipe
    from agentmill.train import federated
    from agentmill.train.pipeline import partial_dir, train_recipe

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = context.run_config
        recipe = load_recipe(Path(str(config["recipe"])), json.loads(str(config["overrides"])))
        out = Path(str(config["out"]))
        federated.DEPLOYED["grid"] = grid
        try:
            train_recipe(recipe, out, resume=partial_dir(out).exists(), console=Console(stderr=True))
        finally:
            federated.DEPLOYED["grid"] = None

    return app


def write_app(recipe: Recipe, recipe_path: Path, overrides: list[str], out: Path, app: Path) -> Path:
    """The Flower App folder for `recipe` (loaded from `recipe_path` with `overrides`, checked first)."""
    from agentmill.train.federated import undeployable

    why = undeployable(recipe)
    if why:
        raise AgentmillError(f"{recipe_path}: {why}")
    app = Path(app)
    if app.exists() and any(app.iterdir()):
        raise AgentmillError(f"{app} already exists and is not empty: pick another --app folder")
    stage = recipe.stages[0]
    app.mkdir(parents=True, exist_ok=True)
    quoted = lambda text: json.dumps(str(text))  # noqa: E731 (a TOML basic string)
    (app / "pyproject.toml").write_text(PYPROJECT.format(
        recipe_name=recipe_path.name, app=app, project=f"agentmill-federated-{recipe.name}".replace("_", "-").lower(),
        package=PACKAGE, recipe=quoted(Path(recipe_path).resolve()), overrides=quoted(json.dumps(overrides)),
        out=quoted(Path(out).resolve())))
    (app / PACKAGE).mkdir()
    (app / PACKAGE / "__init__.py").write_text("")
    (app / PACKAGE / "apps.py").write_text(APP_MODULE)
    (app / "README.md").write_text(readme(recipe_path, stage, app, out))
    return app


def readme(recipe_path: Path, stage, app: Path, out: Path) -> str:
    nodes = "\n".join(
        f"flower-supernode --insecure --superlink SERVER:8000 \\\n"
        f"    --node-config 'client=\"{c.name}\" data-path=\"/path/on/its/machine/{Path(c.data.path).name}\"'"
        for c in stage.clients)
    return f"""# Federated stage of {recipe_path.name}, deployed with Flower

Written by `agentmill federate {recipe_path.name} --app {app}`. The ServerApp runs the recipe's
pipeline on the server's machine and writes the run directory `{out}`; each data owner runs one
SuperNode on its own machine with its own data file, whose records never leave it (only LoRA
adapter weights and example counts travel).

Every machine runs these from an environment where agentmill is installed, with that
environment's `bin` on PATH (Flower starts `flower-superexec`, `flwr-serverapp` and
`flwr-clientapp` by name). On the server's machine:

```bash
flower-superlink --insecure --host 0.0.0.0 --port 8000 --disable-runtime-dependency-installation
```

On each data owner's machine (agentmill installed; the recipe's base model loadable there, or
`backbone="/a/local/folder"` in the node config; `threads=N` for its CPU threads; add `--port` with
a free port when two SuperNodes share a machine):

```bash
{nodes}
```

Then, with a SuperLink connection in `$FLWR_HOME/config.toml` (default `~/.flwr`):

```toml
[superlink]
default = "bank"

[superlink.bank]
address = "SERVER:8000"
insecure = true
```

```bash
flwr run {app} bank --format json     # prints the run id
flwr log RUN_ID bank --stream         # the ServerApp's progress; returns when the run ends
flwr ls bank --run-id RUN_ID          # finished:completed, or the failure
```

`--insecure` runs without TLS: use Flower's TLS and SuperNode authentication across networks
you do not own (https://flower.ai/docs/framework/how-to-enable-tls-connections.html).
"""
