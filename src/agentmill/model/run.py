"""A finished run, loaded for use: backbone + tokenizer + one LoRA adapter per task that has one.

``RunModel.load(RUN_DIR)`` reads ``manifest.json``, loads ``RUN_DIR/model`` (the backbone after
every merged stage) and wraps it in a PEFT model holding each task's adapter, named after the
task. ``use_task(name)`` switches persistently: a task with an adapter activates it; ``None`` or
a task trained into the backbone disables all adapter layers, so ``run.model`` can be handed
as is to `generate`, `score_continuations` or the evaluator (no context manager needed).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

from agentmill.errors import AgentmillError
from agentmill.hardware import Precision, announce, choose_precision


def _unfinished_hint(run_dir: Path) -> str:
    partial = run_dir.parent / f".{run_dir.name}.partial"
    if partial.exists():
        return (f"; the run is unfinished (interrupted or still training) in {partial}: "
                f"continue it with `agentmill train RECIPE --out {run_dir} --resume`")
    return ""


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_precision(manifest: dict, device=None) -> Precision:
    """The precision to run a trained run with on this machine: what its recipe asked for
    (`auto` by default) decided here, not where it was trained."""
    requested = manifest.get("precision_requested")
    if requested is None:  # runs written before the request was recorded: bf16 came from auto
        requested = "fp32" if manifest.get("precision") in ("no", "fp32") else "auto"
    return announce(choose_precision(requested, device))


ROUTER = "router"  # adapter name of the task router (a reserved task name)


class RunModel:
    """Model, tokenizer and manifest of one run, with the current task's adapter selected."""

    def __init__(self, model, tokenizer, manifest: dict, run_dir: Path | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.run_dir = run_dir
        self.tasks: list[str] = list(manifest.get("tasks") or {})
        self.task: str | None = None
        self._adapters: set[str] = set(getattr(model, "peft_config", None) or {})
        self._decoders: dict[str, tuple] = {}
        self.router_classifier = None  # EmbeddingClassifier when the router is one (router kind "embedding")
        self.classifiers: dict = {}  # task -> EmbeddingClassifier (finetune tasks with classifier: embedding)
        self.use_task(None)

    # ---------------------------------------------------------------- construction

    @classmethod
    def load(cls, run_dir, dtype: torch.dtype | None = None, device=None, allow_partial: bool = False) -> "RunModel":
        """Load RUN_DIR. `allow_partial` accepts a ``.NAME.partial`` folder (the pipeline evaluates it
        before renaming it); otherwise an unfinished run is a clear error.

        `dtype` None: the weights in the run's precision on this machine (`run_precision`): bf16
        where it is native (prefill ~2x, batched decoding ~1.6x fp32 on an AMX CPU), else fp32."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        run_dir = Path(run_dir).expanduser()
        if not run_dir.exists():
            hint = _unfinished_hint(run_dir)
            raise AgentmillError(f"run directory {run_dir} does not exist" + hint)
        if not run_dir.is_dir():
            raise AgentmillError(f"{run_dir} is not a run directory (it is a file)")
        if run_dir.name.startswith(".") and run_dir.name.endswith(".partial") and not allow_partial:
            raise AgentmillError(f"{run_dir} is an unfinished run (interrupted or still training): "
                                 f"continue it with `agentmill train RECIPE --resume` and use the finished folder")
        manifest_path = run_dir / "manifest.json"
        if not manifest_path.exists():
            raise AgentmillError(f"{run_dir} is not a finished run directory (no manifest.json)"
                                 + _unfinished_hint(run_dir))
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as err:
            raise AgentmillError(f"{manifest_path}: cannot read the manifest: {err}") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("tasks", {}), dict):
            raise AgentmillError(f"{manifest_path}: not an agentmill manifest (expected an object with 'tasks')")

        device = torch.device(device) if device is not None else _default_device()
        if dtype is None:
            dtype = run_precision(manifest, device).dtype
        model_dir = run_dir / manifest.get("backbone", "model")
        if not (model_dir / "config.json").exists():
            raise AgentmillError(f"{run_dir}: the backbone {model_dir} is missing or has no config.json; "
                                 f"the run is incomplete")
        adapters: list[tuple[str, Path]] = []
        for name, info in (manifest.get("tasks") or {}).items():
            rel = (info or {}).get("adapter")
            if rel:
                path = run_dir / rel
                if not (path / "adapter_config.json").exists():
                    raise AgentmillError(f"{run_dir}: the adapter of task '{name}' ({path}) is missing "
                                         f"or has no adapter_config.json")
                adapters.append((name, path))
        from agentmill.model.text_classifier import EmbeddingClassifier

        classifiers = {name: EmbeddingClassifier.load(run_dir / info["classifier"])
                       for name, info in (manifest.get("tasks") or {}).items() if (info or {}).get("classifier")}
        router = manifest.get("router") or None
        classifier = None
        if router and router.get("kind") == "embedding":
            classifier = EmbeddingClassifier.load(run_dir / router["path"])
        elif router:
            path = run_dir / router["adapter"]
            if not (path / "adapter_config.json").exists():
                raise AgentmillError(f"{run_dir}: the router adapter {path} is missing or has no adapter_config.json")
            adapters.append((ROUTER, path))

        try:
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
        except (OSError, ValueError) as err:
            raise AgentmillError(f"cannot load the backbone {model_dir}: {type(err).__name__}: "
                                 f"{str(err).splitlines()[0] if str(err) else ''}") from None
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token  # masks never rely on pad != eos
        if adapters:
            from peft import PeftModel

            (first, first_path), rest = adapters[0], adapters[1:]
            model = PeftModel.from_pretrained(model, first_path, adapter_name=first, is_trainable=False)
            for name, path in rest:
                model.load_adapter(path, adapter_name=name, is_trainable=False)
        for p in model.parameters():
            p.requires_grad_(False)
        model.to(device)
        model.eval()
        run = cls(model, tokenizer, manifest, run_dir)
        run.router_classifier, run.classifiers = classifier, classifiers
        return run

    @classmethod
    def from_parts(cls, model, tokenizer, manifest: dict | None = None) -> "RunModel":
        """Wrap an in-memory model (plain or PEFT) — for tests and the training pipeline.

        Without a manifest, every adapter of a PEFT model becomes a task of the same name."""
        if manifest is None:
            names = list(getattr(model, "peft_config", None) or {})
            manifest = {"name": "in-memory", "base_model": None, "backbone": None,
                        "tasks": {n: {"adapter": n} for n in names}, "stages": []}
        return cls(model, tokenizer, manifest)

    # ---------------------------------------------------------------- tasks

    def has_adapter(self, task: str | None) -> bool:
        return task is not None and task in self._adapters and bool((self.manifest["tasks"].get(task) or {}).get("adapter"))

    def task_info(self, task: str) -> dict:
        return dict(self.manifest.get("tasks", {}).get(task) or {})

    def use_task(self, name: str | None) -> None:
        """Select a task: its adapter if it has one, else the bare backbone (adapters disabled)."""
        if name is not None and name not in self.tasks:
            listed = ", ".join(self.tasks) if self.tasks else "(none)"
            raise AgentmillError(f"unknown task '{name}'; tasks of this run: {listed}")
        if self._adapters:
            if self.has_adapter(name):
                self.model.set_adapter(name, inference_mode=True)
                self.model.base_model.enable_adapter_layers()
            else:
                self.model.base_model.disable_adapter_layers()
        self.task = name

    @contextlib.contextmanager
    def adapter(self, name: str):
        """Run a block with adapter `name` active (e.g. the router), then restore the task's."""
        if name not in self._adapters:
            raise AgentmillError(f"this run has no adapter '{name}'")
        self.model.set_adapter(name, inference_mode=True)
        self.model.base_model.enable_adapter_layers()
        try:
            yield self.model
        finally:
            self.use_task(self.task)

    def is_classifier(self, task: str | None) -> bool:
        return task is not None and self.task_info(task).get("format") == "classification" and \
            bool(self.task_info(task).get("labels"))

    def classify(self, task: str, text: str) -> str:
        """A classification task's answer to `text`: its classifier's label (classifier: embedding),
        else the label the model scores highest in the task's classification prompt, with the
        adapter currently selected (select the task first: `use_task`)."""
        classifier = self.classifiers.get(task)
        if classifier is not None:
            return classifier.predict([text])[0]
        from agentmill.data.formats import classification_messages
        from agentmill.model.generate import score_continuations

        labels = self.task_info(task)["labels"]
        scores = score_continuations(self.model, self.tokenizer, classification_messages(text, labels), labels)
        return labels[max(range(len(labels)), key=scores.__getitem__)]

    def chat_tasks(self) -> list[str]:
        """The tasks a user can talk to: not the data stages' evaluation sets (`domain`, `dialogue`:
        the backbone itself, which `base` reaches)."""
        return [t for t in self.tasks if not self.task_info(t).get("eval_only")]

    def check_chat_task(self, task: str) -> None:
        """A clear error for a name that is not something to chat with."""
        if task in self.tasks and task not in self.chat_tasks():
            raise AgentmillError(f"'{task}' is an evaluation set of the run (its {self.task_info(task).get('stage')} "
                                 f"stage's held-out data), not a task to chat with; chat with the backbone as "
                                 f"'base', or with one of: {', '.join(self.chat_tasks()) or '(none)'}")
        if task not in self.tasks:
            raise AgentmillError(f"unknown task '{task}'; tasks of this run: {', '.join(self.chat_tasks()) or '(none)'}")

    @property
    def has_router(self) -> bool:
        return bool(self.manifest.get("router")) and (ROUTER in self._adapters or self.router_classifier is not None)

    @property
    def label(self) -> str:
        """What the chat prints before an answer: the task name or ``base``."""
        return self.task or "base"

    def decoder(self, mode: str = "auto"):
        """(the fast decoder's weights for this model or None, what decodes and why), built once
        per mode: see `model.decoder.build_weights`. A loaded run is done training, so the
        adapters it reads stay right."""
        if mode not in self._decoders:
            from agentmill.model.decoder import build_weights

            self._decoders[mode] = build_weights(self.model, mode)
        return self._decoders[mode]

    # ---------------------------------------------------------------- conveniences

    def generate(self, messages: list[dict], **kwargs) -> str:
        from agentmill.model.generate import generate

        return generate(self.model, self.tokenizer, messages, decoder=self.decoder()[0], **kwargs)

    def generate_stream(self, messages: list[dict], **kwargs):
        from agentmill.model.generate import generate_stream

        return generate_stream(self.model, self.tokenizer, messages, decoder=self.decoder()[0], **kwargs)

    def __repr__(self) -> str:
        return f"RunModel({self.run_dir or 'in-memory'}, tasks={self.tasks}, task={self.task!r})"
