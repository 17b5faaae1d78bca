"""Do the exports answer like the run? Greedy answers of llama.cpp on `agentmill export --to gguf`
(f16 and q8_0), and of plain transformers on `--to hf`, against agentmill's own (the run's
adapters, fp32), on held-out prompts of the example's chat tasks: the first user turn of each
held-out record (text only), with the task's system prompt and tools.

Every arm gets the same token ids (agentmill's rendering, which the exported templates reproduce)
and stops at the end-of-turn token; an answer agrees when its text is identical.

Run: .venv/bin/python bench/export_agreement.py RUN_DIR [--prompts 40] [--tokens 48] [--out FILE]
Needs llama-cpp-python (bench/install_llama_cpp.sh) for the GGUF arms.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from agentmill.data.render import end_of_turn_id, render
from agentmill.export import export_run
from agentmill.hardware import cpu_model
from agentmill.model.run import RunModel

HELDOUT = {"customer_service": "cs_heldout.jsonl", "finance_advisor": "advisor_heldout.jsonl",
           "tutoring": "tutor_heldout.jsonl", "finance_qa": "qa_heldout.jsonl"}
DATA = Path(__file__).resolve().parent.parent / "examples" / "finance-advisor" / "data"


def prompts(run: RunModel, per_task: int) -> list[tuple[str, list[dict], list[dict] | None]]:
    from agentmill.tools.setup import task_prompt

    out = []
    for task, file in HELDOUT.items():
        if task not in run.tasks:
            continue
        system, tools = task_prompt(run, task)
        taken = 0
        for line in (DATA / file).read_text().splitlines():
            record = json.loads(line)
            messages = record.get("messages") or [{"role": "user", "content": record.get("instruction", "")}]
            user = next((m for m in messages if m["role"] == "user"), None)
            if user is None or not isinstance(user.get("content"), str) or not user["content"].strip():
                continue  # media records: their text comes from OCR / speech, not compared here
            out.append((task, ([{"role": "system", "content": system}] if system else []) + [user], tools))
            taken += 1
            if taken == per_task:
                break
    return out


def ours(run: RunModel, cases, tokens: int) -> list[str]:
    """The run's model itself, fp32, plain greedy (no fast decoder, no tool-call constraint)."""
    from agentmill.model.generate import generate

    answers = []
    for task, messages, tools in cases:
        run.use_task(task)
        answers.append(generate(run.model, run.tokenizer, messages, tools=tools, max_new_tokens=tokens,
                                decoder=None, constrain=False).strip())
    return answers


def hf_answers(folder: Path, run: RunModel, cases, tokens: int) -> list[str]:
    from transformers import AutoModelForCausalLM

    eot = end_of_turn_id(run.tokenizer)
    answers, models = [], {}
    for task, messages, tools in cases:
        model = models.get(task) or models.setdefault(task, AutoModelForCausalLM.from_pretrained(folder / task).eval())
        ids = run.tokenizer(render(run.tokenizer, messages, add_generation_prompt=True, tools=tools),
                            return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=tokens, do_sample=False, eos_token_id=eot, pad_token_id=eot)
        answers.append(run.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return answers


def llama_answers(folder: Path, kind: str, run: RunModel, cases, tokens: int) -> list[str]:
    from llama_cpp import Llama

    from decode import llama_params  # bench/decode.py: llama.cpp's AMX repacking crashes quantised decoding here

    eot = end_of_turn_id(run.tokenizer)
    answers, models = [], {}
    for task, messages, tools in cases:
        if task not in models:
            with llama_params():
                models[task] = Llama(model_path=str(folder / f"{task}-{kind}.gguf"), n_ctx=2048, n_threads=2,
                                     n_batch=512, verbose=False)
        llm = models[task]
        ids = run.tokenizer(render(run.tokenizer, messages, add_generation_prompt=True, tools=tools),
                            add_special_tokens=False)["input_ids"]
        llm.reset()
        got = []
        for token in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):
            if token in (eot, llm.token_eos()) or len(got) == tokens:
                break
            got.append(token)
        answers.append(run.tokenizer.decode(got, skip_special_tokens=True).strip())
    for llm in models.values():  # free llama.cpp's contexts before the next arm loads its own
        llm.close()
    return answers


ARMS = {"hf": ("hf", None), "f16": ("gguf", "f16"), "q8_0": ("gguf", "q8_0"), "q4_k_m": ("gguf", "q4_k_m")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--prompts", type=int, default=10, help="held-out prompts per task")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--arms", default="hf,f16,q8_0", help=f"comma-separated, of {', '.join(ARMS)}")
    args = parser.parse_args()
    run = RunModel.load(args.run_dir, dtype=torch.float32, device="cpu")
    cases = prompts(run, args.prompts)
    from decode import llama_repack

    result = {"run": str(args.run_dir), "cpu": cpu_model(), "llama.cpp weights": llama_repack()[1], "prompts": len(cases), "max_new_tokens": args.tokens,
              "arms": {}}
    started = time.perf_counter()
    reference = ours(run, cases, args.tokens)
    result["agentmill_s"] = round(time.perf_counter() - started, 1)
    with tempfile.TemporaryDirectory() as tmp:
        arms = [("hf-fp32" if a == "hf" else f"llama.cpp-{a}", *ARMS[a]) for a in args.arms.split(",")]
        for arm, target, kind in arms:
            folder = Path(tmp) / arm
            started = time.perf_counter()
            manifest = export_run(args.run_dir, target, folder, gguf_type=kind or "q8_0")
            export_s = time.perf_counter() - started
            started = time.perf_counter()
            if target == "hf":
                answers = hf_answers(folder, run, cases, args.tokens)
            else:
                try:
                    answers = llama_answers(folder, kind, run, cases, args.tokens)
                except ImportError:
                    result["arms"][arm] = {"skipped": "llama-cpp-python is not installed (bench/install_llama_cpp.sh)"}
                    continue
            same = [a == b for a, b in zip(answers, reference)]
            size = sum(f["bytes"] for f in manifest["files"].values())
            result["arms"][arm] = {"agreement": round(sum(same) / len(same), 3), "agree": sum(same),
                                   "export_s": round(export_s, 1), "answer_s": round(time.perf_counter() - started, 1),
                                   "export_mb": round(size / 1e6), "first_disagreement": next(
                                       ({"task": cases[i][0], "agentmill": reference[i], "export": answers[i]}
                                        for i, ok in enumerate(same) if not ok), None)}
            print(arm, json.dumps(result["arms"][arm]), flush=True)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
