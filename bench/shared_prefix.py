"""Conversations/s of LoRA training on the example's tool conversations, with and without
shared-prefix packing (`train.share_prefix`), SmolLM2-135M, bf16 autocast, CPU.

Each task's training file is rendered with its system prompt and tool list as the pipeline
does, packed into rows of --budget tokens (seeded order, as training), and a few rows are
run through `agentmill.train.loop.row_loss` + backward. Reported per task and mode: rows per
epoch, conversations per row, seconds per row, seen tokens/s and conversations/s.

Run: .venv/bin/python bench/shared_prefix.py [--budget 1024] [--rows 5]
"""

import argparse
import json
import time
from pathlib import Path

import torch
import yaml
from peft import LoraConfig, get_peft_model

from agentmill.data.pack import collate, pack, row_drops, shared_prefixes
from agentmill.data.render import encode_chat
from agentmill.model.load import load_model, load_tokenizer
from agentmill.tools.builtin import builtin_tools
from agentmill.train.loop import row_loss

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finance-advisor"


def task_examples(tokenizer, task: dict, registry, key: str = "data") -> list:
    """A crosstask task's file (`key`: "data" or "eval_data") rendered with its system prompt and tools."""
    tools = registry.subset(task["tools"]).schemas() if task.get("tools") else None
    system = [{"role": "system", "content": task["system"]}] if task.get("system") else []
    out = []
    for line in (EXAMPLE / task[key]["path"]).read_text().splitlines():
        out.append(encode_chat(tokenizer, system + json.loads(line)["messages"], tools=tools, max_length=1024))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=5)
    args = ap.parse_args()
    recipe = yaml.safe_load((EXAMPLE / "recipe.yaml").read_text())
    registry = builtin_tools(recipe["tools"]["settings"], EXAMPLE)
    tokenizer = load_tokenizer("smollm2-135m-instruct")
    model = get_peft_model(load_model("smollm2-135m-instruct"),
                           LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    model.train()
    tasks = [t for t in recipe["stages"][3]["tasks"] if t.get("tools")]
    print(f"{'task':<18}{'mode':<8}{'rows/epoch':>11}{'convs/row':>10}{'s/row':>7}{'tok/s':>7}{'convs/s':>9}")
    for task in tasks:
        examples = task_examples(tokenizer, task, registry)
        lengths = [len(e.input_ids) for e in examples]
        for mode in ("whole", "shared"):
            prefixes = shared_prefixes(examples) if mode == "shared" else None
            rows = pack(lengths, args.budget, seed=1, prefixes=prefixes)
            batches = [collate([examples[i] for i in r], row_drops(r, prefixes)) for r in rows[:args.rows + 1]]
            seconds, seen = 0.0, 0
            for k, batch in enumerate(batches):
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss, n, tokens = row_loss(model, batch)
                (loss / n).backward()
                model.zero_grad(set_to_none=True)
                if k:  # the first row warms up
                    seconds += time.perf_counter() - start
                    seen += tokens
            convs = sum(len(r) for r in rows[1:args.rows + 1]) / args.rows
            per_row = seconds / args.rows
            print(f"{task['name']:<18}{mode:<8}{len(rows):>11}{convs:>10.1f}{per_row:>7.2f}{seen / seconds:>7.0f}"
                  f"{convs / per_row:>9.2f}")


if __name__ == "__main__":
    main()
