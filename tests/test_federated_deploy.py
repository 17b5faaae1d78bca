"""The federated stage deployed with Flower's Deployment Engine on this machine: a SuperLink, three
SuperNodes (each told its own data file in its node config) and `flwr run` on the app that
`agentmill federate --app` writes; ports free, FLWR_HOME in tmp_path."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentmill.cli import app as cli
from agentmill.config import load_recipe
from agentmill.errors import AgentmillError
from agentmill.train.federated_app import write_app

from test_federated import _write

BIN = Path(sys.executable).parent


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _wait(predicate, timeout: float, what: str, procs) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for name, p in procs:
            assert p.poll() is None, f"{name} exited early while waiting for {what}"
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def test_deployed_rounds_run_on_supernodes_that_own_their_data(tmp_path, tokenizer, tiny):
    recipe = _write(tmp_path, tokenizer, tiny, "skip", "    strategy: fedprox\n    proximal_mu: 0.1\n")
    recipe.write_text(recipe.read_text().replace('inject_failures: {"1": [2]}', "inject_failures: {}"))
    # the data owners' files are elsewhere than the recipe says: each node's config names its own
    owners = tmp_path / "owners"
    owners.mkdir()
    for name in ("north", "south", "east"):
        (tmp_path / f"{name}.jsonl").rename(owners / f"{name}.jsonl")
    app, out = tmp_path / "app", tmp_path / "run"
    result = CliRunner().invoke(cli, ["federate", str(recipe), "--app", str(app), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (app / "README.md").exists() and "flwr run" in (app / "README.md").read_text()

    home = tmp_path / "flwr-home"
    home.mkdir()
    link, *node_ports = _free_ports(4)
    (home / "config.toml").write_text(f'[superlink]\ndefault = "t"\n\n[superlink.t]\n'
                                      f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1", "AGENTMILL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    procs, logs = [], tmp_path / "logs"
    logs.mkdir()

    def start(name, command):
        with open(logs / f"{name}.log", "wb") as log:
            procs.append((name, subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, start_new_session=True)))

    def flwr(*args, timeout=120):
        return subprocess.run([str(BIN / "flwr"), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout)

    try:
        start("superlink", [str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(link),
                            "--disable-runtime-dependency-installation"])
        _wait(lambda: socket.socket().connect_ex(("127.0.0.1", link)) == 0, 60, "the SuperLink", procs)
        for port, name in zip(node_ports, ("north", "south", "east")):
            start(name, [str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                         "--host", "127.0.0.1", "--port", str(port),
                         "--node-config", f'client="{name}" data-path="{owners / (name + ".jsonl")}"'])
        _wait(lambda: all(b"SuperNode ID:" in (logs / f"{n}.log").read_bytes() for n in ("north", "south", "east")),
              90, "three SuperNodes", procs)
        submitted = flwr("run", str(app), "t", "--format", "json")
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        run_id = str(json.loads(submitted.stdout)["run-id"])
        log = flwr("log", run_id, "t", "--stream", timeout=400)  # returns when the run ends
        (logs / "serverapp.log").write_text(log.stdout + log.stderr)
        status = json.loads(flwr("ls", "t", "--run-id", run_id, "--format", "json").stdout)["runs"][0]
        assert status["status"] == "finished:completed", (status, log.stdout[-4000:])
    finally:
        for _, p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for _, p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    rounds = json.loads((out / "stages" / "01-federated" / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1, 2]
    for r in rounds[1:]:  # every owner trained on its own file, under the server's FedProx mu
        assert sorted((c["client"], c["examples"], c["proximal_mu"]) for c in r["clients"]) == \
            [("east", 12, 0.1), ("north", 6, 0.1), ("south", 9, 0.1)]
    assert rounds[2]["eval_loss"] < rounds[0]["eval_loss"]
    assert (out / "adapters" / "cs" / "adapter_model.safetensors").exists()
    assert "cs" in json.loads((out / "eval.json").read_text())["tasks"]


def test_an_app_needs_the_federated_stage_first_and_a_new_folder(tmp_path, tokenizer, tiny):
    recipe = _write(tmp_path, tokenizer, tiny, "skip")
    text = recipe.read_text()
    recipe.write_text(text.replace("stages:\n", "stages:\n  - stage: pretrain\n    data: [{path: north.jsonl, "
                                                "format: chat}]\n"))
    with pytest.raises(AgentmillError, match=r"federated stage must be the recipe's first stage \(here: stage 2 of 2\)"):
        write_app(load_recipe(recipe), recipe, [], tmp_path / "run", tmp_path / "app")
    assert not (tmp_path / "app").exists()
    recipe.write_text(text)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "mine.txt").write_text("keep")
    with pytest.raises(AgentmillError, match="already exists and is not empty"):
        write_app(load_recipe(recipe), recipe, [], tmp_path / "run", tmp_path / "app")
    assert os.listdir(tmp_path / "app") == ["mine.txt"]
