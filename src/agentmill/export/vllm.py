"""`--to vllm`: the run's backbone, each task's LoRA adapter in PEFT layout, the tool-aware chat
template and a `serve.sh` that starts ``vllm serve`` with one served model per task
(``--enable-lora --lora-modules``), so a request's ``model`` names the task as with our server.

vLLM refuses some adapters and silently ignores others (an adapter whose module names do not
match the model loads and serves the base model: vllm#34186). Every adapter is checked here
against what vLLM's LoRA loader takes before anything is written; one it would refuse or ignore
fails the export with the reason.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from pathlib import Path

from agentmill.export.common import ExportError, RunInfo, staged_folder, write_manifest

MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # what vLLM's --max-lora-rank accepts
# modules vLLM's LoRA layers wrap in Llama-family models (attention and MLP projections)
LORA_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj",
                "gate_up_proj"}
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")


def base_modules(backbone: Path) -> dict[str, tuple[int, ...]]:
    """Linear modules of the backbone and their weight shapes, from its safetensors headers."""
    from safetensors import safe_open

    shapes = {}
    for file in sorted(backbone.glob("*.safetensors")):
        with safe_open(file, "pt") as f:
            for key in f.keys():
                if key.endswith(".weight"):
                    shapes[key[: -len(".weight")]] = tuple(f.get_slice(key).get_shape())
    if not shapes:
        raise ExportError(f"{backbone}: no safetensors weights to check the adapters against")
    return shapes


def check_adapter(task: str, adapter: Path, modules: dict[str, tuple[int, ...]]) -> int:
    """The adapter's rank, or an ExportError saying what vLLM would refuse or silently ignore."""
    from safetensors import safe_open

    where = f"task '{task}' ({adapter})"
    try:
        config = json.loads((adapter / "adapter_config.json").read_text())
    except (OSError, ValueError) as err:
        raise ExportError(f"{where}: cannot read adapter_config.json: {err}") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise ExportError(f"{where}: a {config['peft_type']} adapter; vLLM serves LoRA adapters only")
    if config.get("use_dora"):
        raise ExportError(f"{where}: a DoRA adapter; vLLM does not support DoRA (train with dora off, or export "
                          f"--to hf, which merges it)")
    if config.get("modules_to_save"):
        raise ExportError(f"{where}: trains whole modules too (modules_to_save: {config['modules_to_save']}); vLLM "
                          f"loads only LoRA weights, so it would refuse or serve without them (export --to hf)")
    if config.get("bias", "none") != "none":
        raise ExportError(f"{where}: trains biases (bias: {config['bias']}); vLLM's LoRA layers take no bias")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ExportError(f"{where}: per-module ranks or alphas (rank_pattern/alpha_pattern); vLLM applies one rank "
                          f"and alpha to every module")
    targets = config.get("target_modules")
    outside = sorted(set(targets) - LORA_MODULES) if isinstance(targets, list) else []
    if outside:
        raise ExportError(f"{where}: adapts {', '.join(outside)}, outside the attention and MLP projections vLLM's "
                          f"LoRA layers wrap ({', '.join(sorted(LORA_MODULES))})")
    rank = int(config.get("r", 0))
    if not 0 < rank <= MAX_LORA_RANKS[-1]:
        raise ExportError(f"{where}: rank {rank}; vLLM serves LoRA ranks 1..{MAX_LORA_RANKS[-1]}")
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        raise ExportError(f"{where}: no adapter_model.safetensors (vLLM loads safetensors adapters)")
    seen = set()
    with safe_open(weights, "pt") as f:
        for key in f.keys():
            match = _KEY.match(key)
            if not match:
                raise ExportError(f"{where}: weight {key!r} is not a LoRA A/B matrix of a module; vLLM would "
                                  f"refuse or ignore it")
            module = match["module"]
            leaf = module.rsplit(".", 1)[-1]
            if leaf not in LORA_MODULES:
                raise ExportError(f"{where}: adapts {module}, outside the attention and MLP projections vLLM's LoRA "
                                  f"layers wrap ({', '.join(sorted(LORA_MODULES))})")
            if module not in modules:
                raise ExportError(f"{where}: adapts {module}, which the backbone does not have: vLLM would load the "
                                  f"adapter and quietly serve the base model (vllm#34186)")
            shape = tuple(f.get_slice(key).get_shape())
            out_features, in_features = modules[module]
            want = (rank, in_features) if match["ab"] == "A" else (out_features, rank)
            if shape != want:
                raise ExportError(f"{where}: {key} has shape {list(shape)}, but {module} needs {list(want)}")
            seen.add(module)
    if not seen:
        raise ExportError(f"{where}: holds no LoRA weights")
    return rank


def serve_script(tasks: list[str], base_names: list[str], max_rank: int, max_loras: int) -> str:
    modules = " \\\n  ".join("--lora-modules " + shlex.quote(json.dumps(
        {"name": name, "path": f"__HERE__/adapters/{name}", "base_model_name": base_names[0]})) for name in tasks)
    script = f"""#!/usr/bin/env bash
# vLLM serving this export: one model name per task ({', '.join(tasks) or 'none'}; {', '.join(base_names)} = the backbone).
# Needs vLLM (pip install vllm) on a machine it supports. Extra vLLM flags pass through: ./serve.sh --port 8001
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
exec vllm serve "$HERE/model" --served-model-name {' '.join(base_names)} \\
  --enable-lora --max-lora-rank {max_rank} --max-loras {max_loras} \\
  {modules} \\
  --enable-auto-tool-choice --tool-call-parser hermes \\
  --chat-template "$HERE/chat_template.jinja" "$@"
"""
    return script.replace("__HERE__", "'\"$HERE\"'")


VLLM_README = """# {name} — exported from agentmill for vLLM

- `model/`: the run's backbone (every merged stage), tokenizer with the tool-aware chat template.
- `adapters/TASK/`: each task's LoRA adapter (PEFT layout), checked against vLLM's LoRA loader.
- `chat_template.jinja`: the rendering the tasks were trained with (tools as Hermes-style `<tool_call>` blocks).
- `tasks.json`: each task's system prompt and tool schemas. vLLM cannot default a system prompt per
  adapter: send the task's `system` as the first message, and its tools as `tools`.
- `serve.sh`: `vllm serve` with one served model per task.

```sh
./serve.sh --port 8000
```

```python
from openai import OpenAI
import json
tasks = json.load(open("tasks.json"))
client = OpenAI(base_url="http://localhost:8000/v1", api_key="none")
task = "{example}"
reply = client.chat.completions.create(model=task, messages=[
    {{"role": "system", "content": tasks[task]["system"] or ""}}, {{"role": "user", "content": "Hello"}}],
    tools=tasks[task]["tools"] or None)
```

The router that picks a task per message runs in agentmill (`agentmill serve`); with vLLM the caller
names the task. Served names: {served}. `export.json` lists every file with its SHA-256.
"""


def export_vllm(run_dir, out, task: str | None = None, dtype: str = "fp32", force: bool = False,
                console=None) -> dict:
    from transformers import AutoTokenizer

    from agentmill.export.hf import DTYPES, check_dtype
    from agentmill.export.template import tool_aware_template

    check_dtype(dtype)
    info = RunInfo.read(run_dir)
    tasks = info.select(task)
    modules = base_modules(info.backbone)
    adapters = {name: info.adapter(name) for name in tasks if info.adapter(name) is not None}
    ranks = {name: check_adapter(name, path, modules) for name, path in adapters.items()}  # before writing
    started = time.perf_counter()
    with staged_folder(Path(out), force) as work:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(info.backbone, dtype=DTYPES[dtype])
        tokenizer = AutoTokenizer.from_pretrained(info.backbone)
        template = tool_aware_template(tokenizer)
        tokenizer.chat_template = template
        model.save_pretrained(work / "model", safe_serialization=True)
        tokenizer.save_pretrained(work / "model")
        (work / "chat_template.jinja").write_text(template)
        for name, path in adapters.items():
            shutil.copytree(path, work / "adapters" / name,
                            ignore=lambda d, names: [n for n in names if n not in ("adapter_config.json",
                                                                                  "adapter_model.safetensors")])
        cards = {}
        for name in tasks:
            system, tools = info.task_prompt(name)
            cards[name] = {"system": system, "tools": tools or [], "adapter": f"adapters/{name}" if name in adapters
                           else None, "served_as": name if name in adapters else "base"}
        (work / "tasks.json").write_text(json.dumps(cards, indent=2, ensure_ascii=False) + "\n")
        base_names = ["base"] + [n for n in tasks if n not in adapters]
        max_rank = next(r for r in MAX_LORA_RANKS if r >= max(ranks.values(), default=1))
        script = work / "serve.sh"
        script.write_text(serve_script(list(adapters), base_names, max_rank, max(1, len(adapters))))
        script.chmod(0o755)
        (work / "README.md").write_text(VLLM_README.format(name=info.manifest.get("name", "run"),
                                                           example=next(iter(adapters), "base"),
                                                           served=", ".join(base_names + list(adapters))))
        if console is not None:
            console.print(f"  backbone + {len(adapters)} adapter(s), --max-lora-rank {max_rank}")
        return write_manifest(work, "vllm", info, tasks, started, dtype=dtype, max_lora_rank=max_rank)
