"""`--to hf`: per task, the backbone with the task's LoRA adapter merged into it — a plain Hugging
Face folder that ``AutoModelForCausalLM.from_pretrained`` loads with no agentmill and no PEFT.

Beside the weights: the tokenizer with the tool-aware chat template (`export.template`, the task's
system prompt as its default), a generation config that stops at the end-of-turn token, and
``agentmill_task.json`` with the task's system prompt and tool schemas (pass them as ``tools``).
Merging is done in fp32, so the folder's logits equal the run's adapter path (tested).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from agentmill.export.common import ExportError, RunInfo, folder_bytes, staged_folder, write_manifest

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def merged_model(info: RunInfo, task: str, dtype: torch.dtype = torch.float32):
    """The backbone with `task`'s adapter merged (the backbone itself for a task without one)."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(info.backbone, dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise ExportError(f"cannot load the backbone {info.backbone}: {err}") from None
    adapter = info.adapter(task)
    if adapter is not None:
        from peft import PeftModel

        if not (adapter / "adapter_config.json").is_file():
            raise ExportError(f"{info.run_dir}: the adapter of task '{task}' ({adapter}) is missing")
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.to(dtype).eval()


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ExportError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")


def write_hf_task(info: RunInfo, task: str, folder: Path, dtype: str = "fp32") -> dict:
    """Write `task` as a Hugging Face model folder into `folder` (which exists); its card."""
    from transformers import AutoTokenizer

    from agentmill.data.render import end_of_turn_id
    from agentmill.export.template import tool_aware_template

    check_dtype(dtype)
    system, tools = info.task_prompt(task)
    model = merged_model(info, task, DTYPES[dtype])
    tokenizer = AutoTokenizer.from_pretrained(info.backbone)
    tokenizer.chat_template = tool_aware_template(tokenizer, system=system)
    eot = end_of_turn_id(tokenizer)
    stops = [eot] + ([tokenizer.eos_token_id] if tokenizer.eos_token_id not in (None, eot) else [])
    model.generation_config.eos_token_id = stops
    model.generation_config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    card = {"task": task, "system": system, "tools": tools or [], "stop_token_ids": stops,
            "stop": [tokenizer.decode([t]) for t in stops], "dtype": dtype,
            "base_model": info.manifest.get("base_model"), "adapter_merged": info.adapter(task) is not None,
            "format": info.task_info(task).get("format")}
    (folder / "agentmill_task.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return card


HF_README = """# {task} — exported from agentmill

The backbone of run `{run}` with the `{task}` adapter merged: a plain Hugging Face folder.

```python
import json
from transformers import AutoModelForCausalLM, AutoTokenizer

folder = "{folder}"
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder)
card = json.load(open(f"{{folder}}/agentmill_task.json"))   # system prompt and tool schemas
messages = [{{"role": "user", "content": "Hello"}}]
ids = tokenizer.apply_chat_template(messages, tools=card["tools"] or None, add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=128, do_sample=False)
print(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
```

- The chat template is the one the task was trained with, tool use included: pass `tools=` (the
  schemas in `agentmill_task.json`) and the model answers with `<tool_call>{{"name": ..., "arguments": ...}}</tool_call>`
  blocks (Hermes style; vLLM's `--tool-call-parser hermes` reads them). Tool results go back as
  messages with role `tool`.
- Without a system message the template uses the task's own prompt (`system` in `agentmill_task.json`).
- Generation stops at {stop} (`generation_config.json`).
- Weights: {dtype}. `export.json` lists every file with its SHA-256.
"""


def export_hf(run_dir, out, task: str | None = None, dtype: str = "fp32", force: bool = False,
              console=None) -> dict:
    """`task` into OUT, or every chat task into OUT/TASK; the export manifest."""
    info = RunInfo.read(run_dir)
    tasks = info.select(task)
    started = time.perf_counter()
    with staged_folder(Path(out), force) as work:
        cards = {}
        for name in tasks:
            folder = work if task else work / name
            folder.mkdir(exist_ok=True)
            cards[name] = write_hf_task(info, name, folder, dtype)
            (folder / "README.md").write_text(HF_README.format(task=name, run=info.run_dir, folder=Path(out) if task
                                                                  else Path(out) / name,
                                                                  stop=", ".join(cards[name]["stop"]), dtype=dtype))
            if console is not None:
                console.print(f"  {name}: {folder_bytes(folder) / 1e6:,.0f} MB")
        manifest = write_manifest(work, "hf", info, tasks, started, dtype=dtype)
    return manifest
