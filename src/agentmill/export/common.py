"""What every export target shares: which tasks to export, a folder that appears only when it is
complete, the manifest of what it holds, and the task card (system prompt, tool schemas)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from agentmill.errors import AgentmillError

TARGETS = ("hf", "gguf", "ollama", "vllm")


class ExportError(AgentmillError):
    """An export that cannot be made (missing tool, unknown task, adapter an engine would refuse)."""


@dataclass
class RunInfo:
    """A finished run's manifest, read without loading any weights."""

    run_dir: Path
    manifest: dict
    tasks: dict = field(default_factory=dict)

    @classmethod
    def read(cls, run_dir) -> "RunInfo":
        run_dir = Path(run_dir).expanduser()
        path = run_dir / "manifest.json"
        if not path.is_file():
            raise ExportError(f"{run_dir}: not a finished run directory (no manifest.json)")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ExportError(f"{path}: cannot read the manifest: {err}") from None
        return cls(run_dir, manifest, dict(manifest.get("tasks") or {}))

    @property
    def backbone(self) -> Path:
        return self.run_dir / self.manifest.get("backbone", "model")

    def chat_tasks(self) -> list[str]:
        """Tasks a language model answers: not the data stages' evaluation sets, not the router,
        not a classifier on sentence embeddings (classifier: embedding, which no engine here runs)."""
        return [t for t, info in self.tasks.items() if not (info or {}).get("eval_only")
                and not (info or {}).get("classifier")]

    def adapter(self, task: str) -> Path | None:
        rel = (self.tasks.get(task) or {}).get("adapter")
        return self.run_dir / rel if rel else None

    def task_prompt(self, task: str) -> tuple[str | None, list[dict] | None]:
        """(system prompt, tool schemas) the task was trained with."""
        from agentmill.tools.setup import task_prompt

        return task_prompt(self, task)

    def task_info(self, task: str) -> dict:  # what tools.setup.task_prompt reads
        return dict(self.tasks.get(task) or {})

    def select(self, task: str | None) -> list[str]:
        """`task` alone, or every chat task when None; a clear error for a name that is none."""
        tasks = self.chat_tasks()
        if task is None:
            if not tasks:
                raise ExportError(f"{self.run_dir}: the run has no task to export")
            return tasks
        if task not in tasks:
            info = self.tasks.get(task) or {}
            kind = ("a classifier on sentence embeddings (" + info["classifier"] + "), not a language model; "
                    "agentmill runs it" if info.get("classifier") else
                    "an evaluation set, not a task to chat with" if task in self.tasks else "not a task of this run")
            raise ExportError(f"'{task}' is {kind}; tasks of {self.run_dir}: {', '.join(tasks) or '(none)'}")
        return [task]


@contextlib.contextmanager
def staged_folder(out: Path, force: bool = False):
    """Yield a temporary folder beside `out`; it becomes `out` only when the block succeeds, so a
    failed export leaves nothing that looks finished."""
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ExportError(f"{out} already exists and is not empty; choose another --out or pass --force")
    work = out.parent / f".{out.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, target: str, info: RunInfo, tasks: list[str], started: float, **details) -> dict:
    """``export.json``: what was exported (`target`, `tasks`, `details`) from which run, how long it
    took since `started` (time.perf_counter()), and every file with its size and SHA-256."""
    import time

    import agentmill

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "export.json")
    manifest = {"agentmill": getattr(agentmill, "__version__", "dev"), "target": target, "run": str(info.run_dir),
                "tasks": tasks, **details, "seconds": round(time.perf_counter() - started, 1),
                "files": {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
                          for p in files}}
    (folder / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
