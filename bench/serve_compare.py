"""Serving SmolLM2-135M-Instruct over the OpenAI API: `agentmill serve` vs llama.cpp's server, same run.

Both servers run as subprocesses on 127.0.0.1 (free ports, started one after the other, stopped in
`finally`); bench/serve_load.py's `drive` sends the same chat requests to each (its 8 prompts, greedy,
the same max_tokens, streaming so the first token is timed) at concurrency 1, 4 and 16. Reported per
arm and concurrency: requests/s, generated tokens/s, latency p50/p99, time to first token p50/p99.

  agentmill   `agentmill serve RUN_DIR` on a run built from the base model with no adapters (or
              --run-dir), in agentmill's precision on this machine, continuous batching (max_batch 16)
  llama.cpp   `python -m llama_cpp.server` on the Q4_1 GGUF that agentmill converts from, 2 threads,
              --interrupt_requests False (its default cancels a streaming reply when the next request
              arrives); it serves one request at a time (a lock around its one `Llama`)
  vllm        recorded as skipped (why: see VLLM_SKIP)

Before each arm's runs, every prompt is sent once without streaming: a warm-up, and its
completion_tokens per prompt count the tokens of streamed replies where the server's stream sends
no usage (llama-cpp-python). Greedy replies are deterministic, so the count is the same.

Run: .venv/bin/python bench/serve_compare.py [--quick] [--run-dir RUN_DIR] [--out serve.json]
     --quick: a quarter of the requests
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode import MODEL, gguf_path, llama_repack  # noqa: E402
from serve_load import PROMPTS, drive  # noqa: E402

CONCURRENCY = (1, 4, 16)
MAX_TOKENS = 64
READY_TIMEOUT_S = 180
# checked with pip (`pip install --dry-run --no-deps vllm` in a throwaway venv), 2026: PyPI's only wheel is
# vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64, the CUDA build
VLLM_SKIP = ("no CPU build of vLLM installs from PyPI: its x86_64 wheel (0.33.0) is the CUDA build, pinning "
             "torch==2.14.0 (the CUDA wheel, which would replace this venv's torch 2.13 CPU) and flashinfer-python; "
             "vLLM on CPU is built from source (VLLM_TARGET_DEVICE=cpu)")


def build_run(root: Path) -> Path:
    """A run directory of the bare base model: manifest.json + model/ (HF weights and tokenizer), no tasks."""
    import torch

    from agentmill.model.load import load_model, load_tokenizer

    load_model(MODEL, dtype=torch.float32).save_pretrained(root / "model")
    load_tokenizer(MODEL).save_pretrained(root / "model")
    manifest = {"name": "serve-compare", "base_model": MODEL, "backbone": "model", "stages": [], "tasks": {},
                "precision_requested": "auto"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


@contextlib.contextmanager
def server(argv: list[str], port: int, log: Path, env: dict | None = None):
    """Start a server, wait until /v1/models answers (bounded), yield its base URL; always stop it."""
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before it was ready: {tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {READY_TIMEOUT_S} s: {tail(log)}")
            try:
                get_json(url + "/v1/models")
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(log: Path, lines: int = 5) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


def completion_tokens(base_url: str, model: str) -> list[int]:
    """completion_tokens of a non-streamed greedy reply to each prompt (also the warm-up)."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0, timeout=600)
    return [client.chat.completions.create(model=model, max_tokens=MAX_TOKENS, temperature=0,
                                           messages=[{"role": "user", "content": p}]).usage.completion_tokens
            for p in PROMPTS]


def load_levels(base_url: str, model: str, requests: dict[int, int]) -> dict:
    per_prompt = completion_tokens(base_url, model)
    out = {"model": model, "completion_tokens_per_prompt": per_prompt}
    for concurrency, n in requests.items():
        stats = asyncio.run(drive(base_url, [model], n, concurrency, MAX_TOKENS, None, stream=True))
        if stats["tokens"] == 0 and not stats["errors"]:  # the stream carried no usage
            stats["tokens"] = sum(per_prompt[i % len(PROMPTS)] for i in range(n))
            stats["tokens_per_s"] = stats["tokens"] / stats["wall_s"]
            stats["tokens_from"] = "non-streamed replies to the same prompts (the stream sends no usage)"
        stats["requests_per_s"] = n / stats["wall_s"]
        out[f"c{concurrency}"] = stats
    return out


def agentmill_arm(run_dir: Path, requests: dict, work: Path) -> dict:
    port = free_port()
    argv = [sys.executable, "-m", "agentmill.cli", "serve", str(run_dir), "--host", "127.0.0.1", "--port", str(port),
            "--db", str(work / "sessions.db")]
    with server(argv, port, work / "agentmill.log") as url:
        cards = get_json(url + "/v1/models")["data"]
        base = next((c["id"] for c in cards if (c.get("agentmill") or {}).get("kind") == "base"), None)
        if base is None:
            raise RuntimeError(f"/v1/models lists no base model: {[c['id'] for c in cards]}")
        return load_levels(url, base, requests) | {"server": "agentmill serve (default settings)"}


# llama-cpp-python has no option for it: the same patch as bench/decode.py's `llama_params`, in the server process
_NO_REPACK = ("import runpy, llama_cpp.llama as high\n"
              "default = high.llama_cpp.llama_model_default_params\n"
              "def params():\n    p = default()\n    p.use_extra_bufts = False\n    return p\n"
              "high.llama_cpp.llama_model_default_params = params\n"
              "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n")


def llama_arm(requests: dict, work: Path) -> dict:
    port = free_port()
    repack, weights = llama_repack()
    launcher = ["-m", "llama_cpp.server"] if repack else ["-c", _NO_REPACK]
    argv = [sys.executable, *launcher, "--model", str(gguf_path()), "--n_threads", "2", "--n_threads_batch", "2",
            "--n_ctx", "2048", "--interrupt_requests", "False", "--host", "127.0.0.1", "--port", str(port)]
    with server(argv, port, work / "llama.log") as url:
        model = get_json(url + "/v1/models")["data"][0]["id"]
        return load_levels(url, model, requests) | {"server": "llama_cpp.server", "weights": weights}


def _arm(results: dict, name: str, fn) -> None:
    t0 = time.perf_counter()
    try:
        results[name] = fn()
        results[name]["arm_wall_s"] = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001 - recorded, the other arms go on
        results[name] = {"skipped": f"{type(err).__name__}: {err}"}


def run(quick: bool = False, run_dir: Path | None = None) -> dict:
    from agentmill.hardware import choose_precision, cpu_model

    requests = {c: n // 4 if quick else n for c, n in zip(CONCURRENCY, (16, 32, 64))}
    results: dict = {"model": MODEL, "cpu": cpu_model(), "agentmill_precision": choose_precision("auto").name,
                     "max_tokens": MAX_TOKENS, "requests": requests, "quick": quick, "stream": True,
                     "load_avg_start": os.getloadavg(), "arms": {}}
    if quick:
        results["note"] = "quick mode: a quarter of the requests per concurrency"
    arms = results["arms"]
    with tempfile.TemporaryDirectory(prefix="serve-compare-") as tmp:
        work = Path(tmp)
        if run_dir is None:
            _arm(arms, "agentmill", lambda: agentmill_arm(build_run(work / "run"), requests, work))
        else:
            _arm(arms, "agentmill", lambda: agentmill_arm(run_dir, requests, work))
        _arm(arms, "llama.cpp", lambda: llama_arm(requests, work))
    arms["vllm"] = {"skipped": "installed, but not benchmarked here (no GPU)" if importlib.util.find_spec("vllm")
                    else VLLM_SKIP}
    results["load_avg_end"] = os.getloadavg()
    return results


def table(results: dict) -> str:
    lines = [f"{results['model']} on {results['cpu']} · streaming chat, max_tokens {results['max_tokens']}, greedy"]
    if results.get("note"):
        lines.append(results["note"])
    lines.append(f"{'arm':10} {'conc':>4} {'reqs':>5} {'req/s':>6} {'tok/s':>6} {'p50 s':>6} {'p99 s':>6} "
                 f"{'TTFT p50':>8} {'TTFT p99':>8} {'errors':>6}")
    for name, arm in results["arms"].items():
        if "skipped" in arm:
            lines.append(f"{name:10} skipped: {arm['skipped']}")
            continue
        for c in CONCURRENCY:
            s = arm[f"c{c}"]
            lines.append(f"{name:10} {c:>4} {s['requests']:>5} {s['requests_per_s']:>6.2f} {s['tokens_per_s']:>6.0f} "
                         f"{s['p50_s']:>6.2f} {s['p99_s']:>6.2f} {s['ttft_p50_s']:>8.3f} {s['ttft_p99_s']:>8.3f} "
                         f"{len(s['errors']):>6}")
        per = arm["completion_tokens_per_prompt"]
        lines.append(f"{'':10} completion tokens per prompt: {per} (mean {sum(per) / len(per):.1f})"
                     + (f" · {arm['weights']}" if "weights" in arm else ""))
        for c in CONCURRENCY:
            for err in arm[f"c{c}"]["errors"][:3]:
                lines.append(f"{'':10} c{c} error: {err}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a quarter of the requests")
    ap.add_argument("--run-dir", type=Path, help="serve this run (default: one built from the base model)")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args()
    start = time.perf_counter()
    results = run(quick=args.quick, run_dir=args.run_dir)
    results["wall_s"] = time.perf_counter() - start
    print(table(results))
    print(f"wall time {results['wall_s']:.0f} s · load average {results['load_avg_start'][0]:.1f} at the start, "
          f"{results['load_avg_end'][0]:.1f} at the end")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
