"""`--to ollama`: per task, the GGUF (llama.cpp's converter) and a Modelfile: ``FROM`` the file,
``TEMPLATE`` printing the conversation the way the task was trained (ChatML, Hermes-style tool
calls), ``SYSTEM`` the task's system message as agentmill renders it (its prompt and its tools'
descriptions), the end-of-turn stop token and greedy decoding.

Ollama's Go templates cannot rebuild the compact tool lines agentmill trains with (they range
over a tool's properties in sorted order, not the schema's), so the task's own tools are described
in ``SYSTEM`` exactly as trained, and tools a request brings are not described again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from agentmill.export.common import ExportError, RunInfo, staged_folder, write_manifest

CHATML_TEMPLATE = """{{- /* agentmill: the task's tools are described in SYSTEM, as it was trained */ -}}
{{- if .Tools }}{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}{{ if .ToolCalls }}
{{ end }}{{ end }}
{{- range $j, $call := .ToolCalls }}{{ if $j }}
{{ end }}<tool_call>
{"name": "{{ $call.Function.Name }}", "arguments": {{ $call.Function.Arguments }}}
</tool_call>{{ end }}
{{- if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>tool
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ else }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}
{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}"""


def system_message(tokenizer, system: str | None, tools: list[dict] | None) -> str:
    """The system message agentmill renders for a task: its prompt, then its tools described."""
    from agentmill.data.render import to_template_messages

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": "x"}]
    first = to_template_messages(tokenizer, messages, tools)[0]
    return first["content"] if first["role"] == "system" else ""


def modelfile(gguf_name: str, system: str, stops: list[str]) -> str:
    if '"""' in system:
        raise ExportError('the task\'s system message contains """, which a Modelfile cannot quote')
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{CHATML_TEMPLATE}"""']
    if system:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f"PARAMETER stop {json.dumps(s)}" for s in stops]
    lines += ["PARAMETER temperature 0", "PARAMETER num_ctx 4096"]
    return "\n".join(lines) + "\n"


OLLAMA_README = """# {name} — exported from agentmill for Ollama

One folder per task: its GGUF (llama.cpp's converter, type {outtype}) and a Modelfile whose template
prints conversations the way the task was trained and whose SYSTEM is the task's system message.

```sh
{commands}
```

The task's own tools are described in SYSTEM exactly as it was trained; the model answers a tool
call as a `<tool_call>{{"name": ..., "arguments": ...}}</tool_call>` block. `export.json` lists every file.
"""


def export_ollama(run_dir, out, task: str | None = None, outtype: str = "q8_0", force: bool = False,
                  console=None) -> dict:
    from transformers import AutoTokenizer

    from agentmill.data.render import _template
    from agentmill.export.gguf import check_type, converter_dir, write_gguf_task

    check_type(outtype)
    info = RunInfo.read(run_dir)
    tasks = info.select(task)
    tokenizer = AutoTokenizer.from_pretrained(info.backbone)
    if "<|im_start|>" not in _template(tokenizer) or "tool_calls" in _template(tokenizer):
        raise ExportError(f"{info.backbone}: the Ollama export writes ChatML templates (SmolLM2, Qwen); this "
                          f"backbone's chat template is another kind: export --to gguf and write its Modelfile")
    converter_dir()
    started = time.perf_counter()
    with staged_folder(Path(out), force) as work:
        commands = []
        for name in tasks:
            folder = work / name
            folder.mkdir()
            path, card = write_gguf_task(info, name, folder, outtype, f"{name}-{outtype}")
            system = system_message(tokenizer, card["system"], card["tools"])
            (folder / "Modelfile").write_text(modelfile(path.name, system, card["stop"]))
            (folder / "agentmill_task.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
            commands.append(f"ollama create {name} -f {name}/Modelfile && ollama run {name}")
            if console is not None:
                console.print(f"  {name}: {path.name} {path.stat().st_size / 1e6:,.0f} MB + Modelfile")
        (work / "README.md").write_text(OLLAMA_README.format(name=info.manifest.get("name", "run"), outtype=outtype,
                                                             commands="\n".join(commands)))
        return write_manifest(work, "ollama", info, tasks, started, type=outtype)
