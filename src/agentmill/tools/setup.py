"""The tool registry of a recipe's ``tools:`` section, or of a trained run (its manifest keeps it)."""

from __future__ import annotations

from pathlib import Path

from agentmill.tools.builtin import builtin_tools
from agentmill.tools.registry import ToolRegistry


def registry_from_spec(spec: dict | None, base_dir: Path | None = None) -> ToolRegistry:
    """Built-ins with ``spec["settings"]`` plus every tool of ``spec["modules"]`` (.py files or dotted
    names). Relative paths are relative to `base_dir`; a loaded recipe's are absolute already."""
    spec = spec or {}
    registry = builtin_tools(spec.get("settings"), base_dir)
    for module in spec.get("modules") or []:
        registry.load_module(module, base_dir)
    for name in spec.get("confirm") or []:
        registry.get(name)  # an unknown name is an error naming it, not a silent no-op
    registry.confirm = set(spec.get("confirm") or [])
    return registry


def registry_for_run(run) -> ToolRegistry:
    """The tools of a run, from the ``tools`` entry of its manifest (the recipe's, resolved)."""
    return registry_from_spec((getattr(run, "manifest", None) or {}).get("tools"))


def task_prompt(run, task: str | None, registry: ToolRegistry | None = None) -> tuple[str | None, list[dict] | None]:
    """(system prompt, tool schemas) task `task` of `run` was trained with, from its manifest.

    The registry is built from the manifest only when the task has tools and none is given."""
    info = run.task_info(task) if task else {}
    names = info.get("tools") or []
    if not names:
        return info.get("system"), None
    return info.get("system"), (registry or registry_for_run(run)).subset(names).schemas()
