"""Helpers for the generation, serve and web tests: a tiny model whose answers depend on the
context, real LoRA adapters on it, a tiny run with two task adapters and a router, a live
uvicorn server on a loopback port in a background thread, and scripted generations."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import torch

from agentmill.model.load import tiny_model

SYSTEM_T1 = "You are task one."


def chatty_tiny(tokenizer):
    """The tiny model with an untied random output layer, so greedy answers depend on the context
    (tied, a random model repeats the prompt's last token) and adapters change them."""
    model = tiny_model(tokenizer)
    gen = torch.Generator().manual_seed(1)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(torch.randn(model.lm_head.weight.shape, generator=gen) * 0.02)
    return model.eval()


def tiny_lora(tokenizer, seed, adapter_name="default"):
    """chatty_tiny with a random (non-zero) LoRA adapter; "default" is saved at the folder's top level."""
    from peft import LoraConfig, get_peft_model

    base = chatty_tiny(tokenizer)  # seeds the global RNG itself: seed the adapter's init after it
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    return get_peft_model(base, config, adapter_name=adapter_name).eval()


def build_run(root, tokenizer):
    """RUN_DIR with tasks t1, t2 (LoRA adapters), merged (no adapter), intent (a classification task
    merged into the backbone), the evaluation set `domain`, and a router over t1/t2."""
    chatty_tiny(tokenizer).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    for name, seed in (("t1", 1), ("t2", 2), ("router", 3)):
        tiny_lora(tokenizer, seed).save_pretrained(root / "adapters" / name)
    manifest = {"name": "servetest", "base_model": "tiny-base", "backbone": "model", "stages": [], "precision_requested": "fp32",
                "tasks": {"t1": {"format": "chat", "adapter": "adapters/t1", "system": SYSTEM_T1},
                          "t2": {"format": "chat", "adapter": "adapters/t2", "tools": ["calculator"]},
                          "merged": {"format": "chat", "adapter": None},
                          "intent": {"format": "classification", "adapter": None, "labels": ["greeting", "question"]},
                          "domain": {"format": "text", "adapter": None, "eval_only": True, "stage": "pretrain"}},
                "router": {"adapter": "adapters/router", "labels": ["t1", "t2"]},
                "tools": {"modules": [], "settings": {}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


# `agentmill serve` as a user runs it (the engine on the main thread), with the test's settings
SERVE = """
import os, sys
from pathlib import Path
from agentmill.serve.server import serve
from agentmill.serve.settings import ServeSettings
serve(Path(sys.argv[1]), port=int(sys.argv[2]), db=Path(sys.argv[3]),
      settings=ServeSettings.model_validate_json(os.environ["SERVE_SETTINGS"]))
"""


def served_process(run_dir, db, settings, log, port: int | None = None, home=None):
    """(process, base URL) of the run served in its own process, once /health answers; its output
    goes to the file `log`."""
    import os
    import subprocess
    import sys

    import httpx

    port = port or free_port()
    env = {**os.environ, "SERVE_SETTINGS": settings.model_dump_json(),
           "AGENTMILL_HOME": str(home or Path(db).parent)}
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-c", SERVE, str(run_dir), str(port), str(db)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise RuntimeError("the served run did not start: " + Path(log).read_text()[-3000:])
        time.sleep(0.2)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def live_server(app):
    """Serve `app` with uvicorn on 127.0.0.1:<free port> in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def script_outputs(monkeypatch, tokenizer, scripts: dict[str, str]):
    """Generations whose prompt contains a key of `scripts` emit that script's tokens (then end of
    turn) instead of the model's choice; everything else is untouched. Returns the patched engine
    module's record of scripted rows."""
    import agentmill.serve.engine as engine_mod
    from agentmill.data.render import end_of_turn_id

    eot = end_of_turn_id(tokenizer)
    encoded = {k: tokenizer(v, add_special_tokens=False)["input_ids"] + [eot] for k, v in scripts.items()}
    original = engine_mod.Engine._advance
    seen = {"rows": 0}

    def advance(self, rows, logits):
        logits = logits.clone()
        for i, row in enumerate(rows):
            script = getattr(row, "_script", None)
            if script is None:
                text = tokenizer.decode(row.gen.prompt_ids)
                script = next((ids for key, ids in encoded.items() if key in text), False)
                row._script = script
                seen["rows"] += bool(script)
            if script:
                logits[i] = -1e9
                logits[i, script[min(len(row.ids), len(script) - 1)]] = 1e9
        return original(self, rows, logits)

    monkeypatch.setattr(engine_mod.Engine, "_advance", advance)
    return seen
