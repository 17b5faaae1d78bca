"""`make soak`: mixed load on `agentmill serve` for a fixed time, and what must hold under it.

The server runs in its own process (as `agentmill serve` does) on a loopback port; W workers,
each with its own agent session, loop over a weighted mix until the time is up:
chat, chat streamed to a slow reader, chat with the request's own `tools`, a completion with
`n` = 2, a stream the client drops after its first events, agent turns (plain and streamed), an
agent stream the client drops mid-turn, and session reads. Every request has a deadline.

It passes when: no response is a 5xx, no request outlives its deadline ("stuck"), /health answers
at the end, and the server's resident memory after warm-up grows by no more than `--rss-bound-mb`
(median of the last 10 % of samples minus the median of the first 10 % after warm-up). Writes
bench/results/soak-DATE-CPU.json and the RSS curve as a PNG beside it; exit 1 on any failure.

Run:  .venv/bin/python bench/soak.py [--minutes 20] [--workers 8] [RUN_DIR]   (default: the tests' tiny run)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city.",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}
PROMPTS = ["Hi", "What is compound interest?", "Tell me about savings accounts.", "2+2?", "ok",
           "What is the weather in Paris?", "Summarise: rates rose again this quarter while savings fell."]
# scenario: weight
MIX = {"chat": 4, "chat_slow_stream": 2, "chat_tools": 2, "completion_n2": 1, "chat_dropped_stream": 2,
       "agent_turn": 3, "agent_stream": 2, "agent_dropped_stream": 1, "session_reads": 2}


class Tally:
    def __init__(self):
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.failures: list[str] = []
        self.stuck = 0
        self.done = 0

    def record(self, scenario: str, status: int | str, seconds: float) -> None:
        self.statuses[scenario][str(status)] += 1
        self.latencies[scenario].append(seconds)
        self.done += 1
        if isinstance(status, int) and status >= 500:
            self.failures.append(f"{scenario}: HTTP {status}")


async def _sse(response, slow: float = 0.0, drop_after: int | None = None) -> list[str]:
    """Event names of an SSE response, read `slow` seconds apart; stop after `drop_after` lines."""
    events, lines = [], 0
    async for line in response.aiter_lines():
        lines += 1
        if line.startswith("event: "):
            events.append(line[7:])
        elif line.startswith("data: {\"error\""):
            events.append("error")
        if slow:
            await asyncio.sleep(slow)
        if drop_after is not None and lines >= drop_after:
            break  # leaving the `stream` context closes the connection mid-stream
    return events


async def scenario(h, name: str, models: list[str], sid: str, rng: random.Random) -> int:
    """One request of the mix; returns its HTTP status."""
    prompt = rng.choice(PROMPTS)
    chat = {"model": rng.choice(models), "messages": [{"role": "user", "content": prompt}],
            "max_tokens": rng.randint(1, 24)}
    if name == "chat":
        return (await h.post("/v1/chat/completions", json=chat)).status_code
    if name == "chat_tools":
        return (await h.post("/v1/chat/completions", json={**chat, "tools": [TOOL], "tool_choice": "auto"})).status_code
    if name == "completion_n2":
        body = {"model": chat["model"], "prompt": prompt, "max_tokens": 8, "n": 2, "temperature": 0.7}
        return (await h.post("/v1/completions", json=body)).status_code
    if name in ("chat_slow_stream", "chat_dropped_stream"):
        async with h.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as r:
            if r.status_code == 200:
                await _sse(r, slow=0.05 if name == "chat_slow_stream" else 0.0,
                           drop_after=2 if name == "chat_dropped_stream" else None)
            return r.status_code
    if name.startswith("agent_"):
        # a session answers one message at a time: after a dropped stream its turn is still being
        # cancelled (409) for a moment. Retry until it is free; a session busy for good is "stuck".
        while (status := await agent_turn(h, name, sid, prompt)) == 409:
            await asyncio.sleep(0.1)
        return status
    if name == "session_reads":
        for path in ("/v1/agent/sessions", f"/v1/agent/sessions/{sid}", "/v1/models", "/health"):
            r = await h.get(path)
            if r.status_code != 200:
                return r.status_code
        return 200
    raise ValueError(name)


async def agent_turn(h, name: str, sid: str, prompt: str) -> int:
    if name == "agent_turn":
        r = await h.post(f"/v1/agent/sessions/{sid}/messages", json={"content": prompt, "task": "auto"})
        return r.status_code
    body = {"content": prompt, "task": "auto", "stream": True}
    async with h.stream("POST", f"/v1/agent/sessions/{sid}/messages", json=body) as r:
        if r.status_code == 200:
            events = await _sse(r, drop_after=3 if name == "agent_dropped_stream" else None)
            if "error" in events:
                return 599  # an error event inside a 200 stream counts as a server failure
        return r.status_code


async def worker(url: str, n: int, models: list[str], until: float, deadline_s: float, tally: Tally) -> None:
    import httpx

    rng = random.Random(n)
    names, weights = zip(*MIX.items())
    async with httpx.AsyncClient(base_url=url, timeout=deadline_s) as h:
        sid = (await h.post("/v1/agent/sessions", json={"title": f"soak {n}"})).json()["id"]
        while time.monotonic() < until:
            name = rng.choices(names, weights)[0]
            started = time.monotonic()
            try:
                status = await asyncio.wait_for(scenario(h, name, models, sid, rng), deadline_s)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                tally.stuck += 1
                tally.failures.append(f"{name}: no answer within {deadline_s:.0f} s")
                status = "stuck"
            except httpx.HTTPError as err:
                status = f"client error {type(err).__name__}"
                tally.failures.append(f"{name}: {type(err).__name__}: {err}")
            tally.record(name, status, time.monotonic() - started)
            if name == "agent_turn" and rng.random() < 0.05:  # sessions come and go too
                await h.delete(f"/v1/agent/sessions/{sid}")
                sid = (await h.post("/v1/agent/sessions", json={"title": f"soak {n}"})).json()["id"]


def sample_rss(pid: int, stop: threading.Event, samples: list, tally: Tally, every: float) -> None:
    import psutil

    process, started = psutil.Process(pid), time.monotonic()
    while not stop.is_set():
        try:
            samples.append((time.monotonic() - started, process.memory_info().rss / 2**20, tally.done))
        except psutil.Error:
            return
        stop.wait(every)


def rss_growth(samples: list, warmup_s: float) -> tuple[float, float, float]:
    """(MB after warm-up, MB at the end, growth): medians of the first and last 10 % after warm-up."""
    after = [mb for t, mb, _ in samples if t >= warmup_s]
    if len(after) < 4:
        return float("nan"), float("nan"), float("nan")
    k = max(2, len(after) // 10)
    first, last = statistics.median(after[:k]), statistics.median(after[-k:])
    return first, last, last - first


def plot(samples: list, warmup_s: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([t / 60 for t, _, _ in samples], [mb for _, mb, _ in samples], label="server RSS (MiB)")
    ax.axvline(warmup_s / 60, color="grey", linestyle="--", label="end of warm-up")
    ax.set_xlabel("minutes")
    ax.set_ylabel("MiB")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", nargs="?", type=Path, help="default: the tests' random tiny run (no weights)")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=0.2, help="share of the time that is warm-up")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds a request may take before it is stuck")
    ap.add_argument("--rss-bound-mb", type=float, default=64.0)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()

    from run import cpu_slug, machine
    from serve_util import build_run, served_process

    from agentmill.model.load import load_tokenizer
    from agentmill.model.run import RunModel
    from agentmill.serve import ServeSettings

    folder = Path(tempfile.mkdtemp(prefix="agentmill-soak-"))
    run_dir = args.run_dir or build_run(folder / "run", load_tokenizer("smollm2-135m-instruct"))
    run = RunModel.load(run_dir)
    models = [*run.chat_tasks(), "base", "auto"]
    del run
    settings = ServeSettings(rate_per_minute=10**9, concurrency_per_key=10**6, agent_max_new_tokens=32,
                             media_dir=folder / "media")
    log = folder / "server.log"
    process, url = served_process(run_dir, folder / "s.db", settings, log)
    tally, samples, stop = Tally(), [], threading.Event()
    duration = args.minutes * 60
    sampler = threading.Thread(target=sample_rss, args=(process.pid, stop, samples, tally, max(1.0, duration / 400)),
                               daemon=True)
    sampler.start()
    started = time.monotonic()

    async def load() -> None:
        until = time.monotonic() + duration
        await asyncio.gather(*(worker(url, n, models, until, args.deadline, tally) for n in range(args.workers)))

    try:
        asyncio.run(load())
        import httpx

        healthy = httpx.get(url + "/health", timeout=30).status_code == 200
    finally:
        stop.set()
        sampler.join(timeout=10)
        process.terminate()
        process.wait(timeout=60)
    wall = time.monotonic() - started
    warmup_s = duration * args.warmup
    first, last, growth = rss_growth(samples, warmup_s)
    server_errors = sum(n for s in tally.statuses.values() for code, n in s.items() if code[:1] == "5")
    info = machine()
    checks = {"no_5xx": server_errors == 0, "none_stuck": tally.stuck == 0, "healthy_at_end": healthy,
              "rss_flat": growth <= args.rss_bound_mb, "no_client_errors": not tally.failures}
    result = {"date": datetime.date.today().isoformat(), "minutes": args.minutes, "workers": args.workers,
              "run": str(args.run_dir or "tiny"), "wall_s": round(wall, 1), "requests": tally.done,
              "statuses": {k: dict(v) for k, v in tally.statuses.items()},
              "latency_p50_s": {k: round(statistics.median(v), 3) for k, v in tally.latencies.items()},
              "latency_max_s": {k: round(max(v), 3) for k, v in tally.latencies.items()},
              "server_5xx": server_errors, "stuck": tally.stuck, "failures": tally.failures[:50],
              "rss_mb": {"after_warmup": round(first, 1), "end": round(last, 1), "growth": round(growth, 1),
                         "bound": args.rss_bound_mb, "peak": round(max(mb for _, mb, _ in samples), 1)},
              "checks": checks, "passed": all(checks.values()), "machine": info}
    cpu = cpu_slug(info["cpu"]["model"])
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"soak-{result['date']}-{cpu}"
    plot(samples, warmup_s, stem.with_suffix(".png"),
         f"agentmill serve, {args.minutes:g} min, {args.workers} workers, {tally.done} requests · {info['cpu']['model']}")
    stem.with_suffix(".json").write_text(json.dumps({**result, "rss_samples": samples}, indent=1))
    print(f"{tally.done} requests in {wall / 60:.1f} min ({args.workers} workers): {server_errors} 5xx, "
          f"{tally.stuck} stuck, {len(tally.failures)} failures; RSS {first:.0f} → {last:.0f} MiB after warm-up "
          f"(growth {growth:+.1f}, bound {args.rss_bound_mb:g}), peak {result['rss_mb']['peak']:.0f} MiB")
    for name, counts in sorted(result["statuses"].items()):
        print(f"  {name:<22} {dict(counts)}  p50 {result['latency_p50_s'][name] * 1000:.0f} ms, "
              f"max {result['latency_max_s'][name]:.1f} s")
    for failure in tally.failures[:10]:
        print("  FAILED " + failure)
    print(("passed" if result["passed"] else "FAILED: " + ", ".join(k for k, v in checks.items() if not v))
          + f"; written to {stem}.json and .png (server log: {log})")
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
