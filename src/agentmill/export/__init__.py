"""Take a trained run to where users deploy: a merged Hugging Face folder per task (`hf`),
llama.cpp GGUF files (`gguf`), Ollama Modelfiles (`ollama`) and vLLM with per-task LoRA (`vllm`).
Each target goes through the engine's own tools; each writes a README and an ``export.json``
manifest, into a folder that appears only when complete."""

from __future__ import annotations

from agentmill.export.common import TARGETS, ExportError


def export_run(run_dir, to: str, out, task: str | None = None, gguf_type: str = "q8_0", dtype: str = "fp32",
               force: bool = False, console=None) -> dict:
    """Export RUN_DIR to target `to` in OUT; the export manifest (export.json)."""
    if to == "hf":
        from agentmill.export.hf import export_hf

        return export_hf(run_dir, out, task, dtype=dtype, force=force, console=console)
    if to == "gguf":
        from agentmill.export.gguf import export_gguf

        return export_gguf(run_dir, out, task, outtype=gguf_type, force=force, console=console)
    if to == "ollama":
        from agentmill.export.ollama import export_ollama

        return export_ollama(run_dir, out, task, outtype=gguf_type, force=force, console=console)
    if to == "vllm":
        from agentmill.export.vllm import export_vllm

        return export_vllm(run_dir, out, task, dtype=dtype, force=force, console=console)
    raise ExportError(f"--to {to!r}: choose one of {', '.join(TARGETS)}")


__all__ = ["ExportError", "export_run"]
