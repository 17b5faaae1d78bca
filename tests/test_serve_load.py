"""Load: 64 chat requests, 16 at a time, over mixed task adapters, the base and auto, through the
official async client; zero errors, real batching; prints p50/p99 latency and tokens/s
(bench/serve_load.py is the heavier variant)."""

import asyncio
import importlib.util
from pathlib import Path

from agentmill.model.run import RunModel
from agentmill.serve import create_app
from serve_util import build_run, live_server

BENCH = Path(__file__).resolve().parents[1] / "bench" / "serve_load.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("serve_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_64_requests_16_at_a_time_mixed_adapters(tmp_path, tokenizer, capsys):
    bench = load_bench()
    run = RunModel.load(build_run(tmp_path / "run", tokenizer))
    app = create_app(run)
    engine = app.state.agentmill.engine
    with live_server(app) as url:
        stats = asyncio.run(bench.drive(url, ["t1", "t2", "tiny-base", "merged", "auto"], requests=64,
                                        concurrency=16, max_tokens=16, stream=True))
    with capsys.disabled():
        print("\nserve load: " + bench.report(stats)
              + f" · up to {engine.widest} rows per step, {engine.joins} mid-batch joins")
    assert stats["errors"] == []
    assert stats["tokens"] > 0 and stats["p99_s"] >= stats["p50_s"] > 0
    assert engine.widest >= 8 and engine.joins > 0  # requests really shared decode steps
