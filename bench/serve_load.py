"""Load on `agentmill serve`: N chat requests, C at a time, over several models (task adapters mixed
in one batch), with the official async `openai` client. Prints p50/p99 latency, time to first
token (--stream) and generated tokens/s; any error is listed and makes the exit status 1.

Run:
  .venv/bin/python bench/serve_load.py RUN_DIR [--requests 256 --concurrency 32 --max-tokens 64 --stream]
  .venv/bin/python bench/serve_load.py --tiny            # a random tiny run (tests' fixture), no weights
  .venv/bin/python bench/serve_load.py --url http://127.0.0.1:8000 --api-key KEY   # a running server
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

PROMPTS = ["Hi", "What is compound interest?", "Tell me a story about a bank.", "2+2?",
           "How do I open a savings account, and what documents do I need?", "ok", "Why is the sky blue?",
           "Summarise: rates rose again this quarter while savings fell."]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


async def drive(base_url: str, models: list[str], requests: int = 64, concurrency: int = 16, max_tokens: int = 16,
                api_key: str | None = None, stream: bool = False) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url + "/v1", api_key=api_key or "none", max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)
    latencies, first_tokens, errors, tokens = [], [], [], 0

    async def one(i: int) -> None:
        nonlocal tokens
        kwargs = dict(model=models[i % len(models)], max_tokens=max_tokens, temperature=0,
                      messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}])
        async with gate:
            start = time.perf_counter()
            try:
                if stream:
                    first = None
                    chunks = await client.chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                                  **kwargs)
                    async for chunk in chunks:
                        if first is None and chunk.choices and chunk.choices[0].delta.content:
                            first = time.perf_counter() - start
                        if chunk.usage:
                            tokens += chunk.usage.completion_tokens
                    first_tokens.append(first if first is not None else time.perf_counter() - start)
                else:
                    reply = await client.chat.completions.create(**kwargs)
                    tokens += reply.usage.completion_tokens
                latencies.append(time.perf_counter() - start)
            except Exception as err:  # noqa: BLE001 - counted and listed
                errors.append(f"request {i} ({kwargs['model']}): {type(err).__name__}: {err}")

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall = time.perf_counter() - start
    await client.close()
    out = {"requests": requests, "concurrency": concurrency, "errors": errors, "p50_s": percentile(latencies, 50),
           "p99_s": percentile(latencies, 99), "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall}
    if stream:
        out["ttft_p50_s"], out["ttft_p99_s"] = percentile(first_tokens, 50), percentile(first_tokens, 99)
    return out


def report(stats: dict) -> str:
    line = (f"{stats['requests']} requests, {stats['concurrency']} at a time: {len(stats['errors'])} errors · "
            f"latency p50 {stats['p50_s'] * 1000:.0f} ms, p99 {stats['p99_s'] * 1000:.0f} ms · "
            f"{stats['tokens']} tokens in {stats['wall_s']:.2f} s = {stats['tokens_per_s']:.0f} tokens/s")
    if "ttft_p50_s" in stats:
        line += f" · first token p50 {stats['ttft_p50_s'] * 1000:.0f} ms, p99 {stats['ttft_p99_s'] * 1000:.0f} ms"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", nargs="?", type=Path)
    ap.add_argument("--tiny", action="store_true", help="serve a random tiny run (no weights needed)")
    ap.add_argument("--url", help="load a running server instead of starting one")
    ap.add_argument("--api-key")
    ap.add_argument("--models", help="comma-separated (default: every task, the base and auto)")
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--stream", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from serve_util import build_run, live_server

    if args.url:
        models = args.models.split(",") if args.models else ["auto"]
        stats = asyncio.run(drive(args.url, models, args.requests, args.concurrency, args.max_tokens, args.api_key,
                                  args.stream))
        engine = None
    else:
        import tempfile

        from agentmill.model.run import RunModel
        from agentmill.serve import ServeSettings, create_app

        if args.tiny:
            from agentmill.model.load import load_tokenizer

            run_dir = build_run(Path(tempfile.mkdtemp()) / "run", load_tokenizer("smollm2-135m-instruct"))
        elif args.run_dir:
            run_dir = args.run_dir
        else:
            ap.error("give RUN_DIR, --tiny or --url")
        run = RunModel.load(run_dir)
        settings = ServeSettings(max_batch=args.max_batch, max_tokens_cap=max(1024, args.max_tokens),
                                 rate_per_minute=10**9, concurrency_per_key=10**6)
        app = create_app(run, settings=settings)
        catalog, engine = app.state.agentmill.catalog, app.state.agentmill.engine
        models = args.models.split(",") if args.models else [*run.tasks, catalog.base_id, "auto"]
        with live_server(app) as url:
            stats = asyncio.run(drive(url, models, args.requests, args.concurrency, args.max_tokens, None, args.stream))
    print(f"models: {', '.join(models)}")
    print(report(stats))
    if engine is not None:
        print(f"engine: {engine.steps} decode steps, up to {engine.widest} rows per step, "
              f"{engine.joins} mid-batch joins")
    for err in stats["errors"][:10]:
        print("  " + err)
    sys.exit(1 if stats["errors"] else 0)


if __name__ == "__main__":
    main()
