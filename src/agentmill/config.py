"""The recipe: one YAML file, validated in full before anything runs.

Every option is documented where it is defined. Unknown keys are errors (with a
did-you-mean), each error names the recipe file and line. Paths inside a recipe are
relative to the recipe file. Command-line overrides are dotted ``key=value`` pairs
(``train.epochs=2``, ``stages.0.train.max_steps=5``); ``profile=NAME`` applies the
recipe's own ``profiles: {NAME: {dotted.key: value}}`` first.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentmill.errors import AgentmillError

FORMATS = ("text", "instruction", "classification", "chat")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    path: Path = Field(description="Data file, relative to the recipe file.")
    format: Literal["text", "instruction", "classification", "chat"] = Field(
        description="text (.txt or JSONL {text}), instruction, classification ({text,label}) or chat (OpenAI or ShareGPT).")


class LoraSpec(_Strict):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: float = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    targets: Union[Literal["all-linear"], list[str]] = Field(
        "all-linear", description="Modules to adapt: 'all-linear' or a list of module names.")
    top_layers: int | None = Field(
        None, ge=1, description="Adapt only the top N decoder layers (default: all). Backward then stops "
        "at the lowest adapted layer: measured 1.4x training tokens/s with the top half of SmolLM2-135M.")


DEFAULT_LR = {"lora": 1e-3, "full": 5e-5}  # TrainSpec.lr unset


class TrainSpec(_Strict):
    max_length: int = Field(1024, ge=16, description="Longest example in tokens; also the packing budget.")
    lr: float | None = Field(
        None, gt=0, description="Peak learning rate (cosine schedule after warm-up). Unset: 1e-3 with LoRA, "
        "5e-5 with method full. Measured with LoRA on 100 records of bench/small_data.py's topics, the "
        "model writing the label, 16 steps: held-out accuracy 0.615 at 2e-4 (the earlier default), 0.92 at "
        "1e-3, 0.98 at 3e-3 (one size, one seed: 1e-3 is the cautious pick).")
    epochs: float | None = Field(
        None, gt=0, description="Passes over the stage's data. Unset: one pass, or more on a small dataset, as many "
        "as `min_steps` needs (at most `max_auto_epochs`): a few hundred records are 10-20 steps a pass, too few "
        "to learn from (measured: bench/small_data.py).")
    min_steps: int = Field(
        120, ge=1, description="With `epochs` and `max_steps` unset, the fewest optimizer steps a stage takes.")
    max_auto_epochs: float = Field(
        8, gt=0, description="With `epochs` and `max_steps` unset, the most passes `min_steps` may add.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    grad_accum: int = Field(4, ge=1, description="Packed rows per optimizer step (per process).")
    micro_batch_tokens: int | None = Field(
        None, ge=16, description="Token budget of one packed row; default max_length.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    precision: Literal["bf16", "fp32", "auto"] = Field(
        "auto", description="auto: the dtype that is fast on the machine it runs on (bf16 on GPUs with bf16 and on "
        "CPUs with native bf16 matmuls, AMX or AVX-512-BF16, confirmed by a cached matmul probe; fp32 elsewhere, "
        "e.g. AVX2-only CPUs, where bf16 is ~170x slower). bf16 forces bf16 autocast (one warning where it is slow); "
        "fp32 forces fp32. Chat, serve and eval of the run decide again on the machine they run on.")
    packing: bool = Field(True, description="Pack examples into rows of micro_batch_tokens without pad tokens.")
    share_prefix: bool = Field(
        True, description="With packing, put a common untrained prefix (a task's system prompt and tool list) "
        "once per row; the other examples attend to it. Exact: same loss and gradients. Measured on the "
        "example's tool conversations: ~2x the conversations per 1,024-token row.")
    fused_lora: bool = Field(
        True, description="Run each plain LoRA Linear layer as one fused product (model/fused_lora.py) instead of "
        "peft's three passes over its output. Same loss and gradients up to float rounding; off: peft's forward.")
    mask: Literal["assistant", "all", "last_turn"] = Field(
        "assistant", description="Which tokens of a conversation carry a loss.")
    eval_every: int | None = Field(
        None, ge=1, description="Evaluate held-out loss every N optimizer steps. Unset: 5 times a stage, at least "
        "every 100 steps.")
    keep_best: bool = Field(
        True, description="End the stage with the weights of its evaluation with the lowest held-out loss (the "
        "last step's unless a later evaluation was worse), like transformers' load_best_model_at_end.")
    patience: int | None = Field(
        3, ge=1, description="Stop early after this many evaluations in a row without a lower held-out loss "
        "(null: never).")
    checkpoint_every: int = Field(200, ge=1, description="Write a resumable checkpoint every N optimizer steps.")
    eval_max_records: int | None = Field(200, ge=1, description="Cap on held-out records scored per task (generation is slow); for text, "
        "documents or paragraphs. null: every record (`agentmill eval --all-records`).")
    eval_fraction: float = Field(
        0.1, ge=0, lt=1, description="Held-out fraction taken from the training data when no eval_data is given.")
    report_to: Literal["tensorboard", "wandb", "none"] = Field("tensorboard", description="Metrics tracker.")


class TaskSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$", description="Task name (adapter name, `model` in the API).")
    data: DataSpec
    eval_data: DataSpec | None = Field(None, description="Held-out data; default: eval_fraction of `data`.")
    weight: float = Field(1.0, gt=0, description="Mixing weight in crosstask.")
    system: str | None = Field(
        None, description="System prompt of this task: put before every record without one, in training and "
        "at run time (agent, API), so the task is always prompted the way it was trained.")
    tools: list[str] = Field(
        default_factory=list, description="Allow-list of tool names this task may call (see `tools:`). Their "
        "schemas are rendered into every record of the task, in training and at run time.")
    train: dict[str, Any] = Field(
        default_factory=dict, description="crosstask per_task: train overrides for this task's own adapter "
        "(on top of the stage's `per_task_train`).")
    classifier: Literal["auto", "generative", "embedding"] = Field(
        "auto", description="finetune, classification data: embedding fits a logistic-regression classifier on "
        "the embedded MiniLM's sentence embeddings (model/text_classifier.py), in seconds, kept beside the "
        "backbone, so later stages cannot make it forget; generative trains the language model to write the "
        "label (the stage's LoRA, merged into the backbone). auto: embedding for classification data in "
        "finetune, generative elsewhere. Measured: the example's 120 held-out intents 1.0 against 0.91 after "
        "finetune and 0.73 after two more stages (generative); a news-topic set built here, 400 held-out, "
        "0.93 / 0.94 / 0.95 from 100 / 500 / 2,000 records (bench/small_data.py).")

    tool_use: Literal["none", "general"] = Field(
        "none", description="crosstask: general also trains this task's own adapter (per_task) on generated "
        "general tool-use records (data/toolgen.py: many domains, every JSON-schema type, one to four tools "
        "offered, some questions no offered tool fits), so it calls tools it never saw, such as an API "
        "request's own `tools`. Set it on the stage to teach the shared backbone instead.")

    @model_validator(mode="after")
    def _classifier_needs_labels(self):
        if self.classifier == "embedding" and self.data.format != "classification":
            raise ValueError(f"task '{self.name}': classifier: embedding needs format: classification data, "
                             f"not {self.data.format}")
        return self


class ToolsSpec(_Strict):
    modules: list[str] = Field(
        default_factory=list, description="Your own tools: .py files (relative to the recipe) or dotted module "
        "names; every @tool-decorated function in them is registered.")
    settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Settings of built-in tools, e.g. knowledge_search: {folder: docs}, "
        "account_lookup: {database: bank.sql} (paths relative to the recipe).")
    confirm: list[str] = Field(
        default_factory=list, description="Tools whose calls wait for the user when an argument came only from "
        "text the agent read (a tool's result, an image's text) and not from the user's own words: the defence "
        "against injected instructions. The agent stops and asks; the user confirms by saying the value "
        "(e.g. 'yes, NW-66666'). Goal mode asks before every call anyway.")


class MediaSettings(_Strict):
    """Speech and image input, speech output (media/): which engine, and what a file may be."""

    speech: Literal["whisper", "none"] = Field(
        "whisper", description="Speech to text: faster-whisper, or none (audio is refused).")
    speech_model: str | None = Field(
        None, description="A faster-whisper (CTranslate2) model folder; default: the embedded Whisper tiny.en.")
    speech_compute_type: str = Field(
        "float32", description="CTranslate2 compute type of the speech model. float32 hears a recording the same "
                               "on every CPU; int8 does not: CTranslate2 runs it on Intel MKL on Intel CPUs and "
                               "on oneDNN elsewhere, and on the example's 81 clips int8 transcripts differed "
                               "between the two on 12 (AMD EPYC Zen 5; float32: 0, at the same speed).")
    speech_prompt: str | None = Field(
        None, description="Text that primes speech recognition with the domain's words (Whisper's initial "
                          "prompt, OpenAI's `prompt`), e.g. \"Northwind Bank: accounts, invoices, statements.\"; "
                          "a request's own `prompt` replaces it.")
    image: Literal["tesseract", "vision", "none"] = Field(
        "tesseract", description="Image to text: Tesseract OCR, a local vision-language model, or none (refused).")
    image_model: str | None = Field(None, description="The vision-language model folder (image: vision).")
    ocr_lang: str = Field("eng", description="Tesseract language(s), e.g. eng or eng+deu.")
    voice: Literal["espeak", "none"] = Field("espeak", description="Text to speech: espeak-ng, or none.")
    max_file_bytes: int = Field(25 * 1024 * 1024, ge=1, description="Largest audio or image file (OpenAI's 25 MB).")
    max_audio_seconds: float = Field(600, gt=0, description="Longest audio accepted.")
    max_image_pixels: int = Field(40_000_000, ge=1, description="Largest image (width x height): decompression bombs stop here.")
    fetch_urls: bool = Field(
        False, description="Fetch http(s) image URLs in chat messages (private and loopback addresses are always refused).")
    fetch_timeout_s: float = Field(10, gt=0, description="Time limit of one URL fetch.")
    eval_data: Path | None = Field(
        None, description="JSON Lines of {file, kind: image|audio, text}: what each file really says (paths "
                          "relative to this file); `agentmill eval` reports OCR CER and speech WER on it.")


class _StageBase(_Strict):
    train: dict[str, Any] = Field(default_factory=dict, description="Overrides of the global `train` for this stage.")


class PretrainStage(_StageBase):
    stage: Literal["pretrain"]
    data: list[DataSpec] = Field(min_length=1)
    eval_data: list[DataSpec] = Field(default_factory=list)


class FinetuneStage(_StageBase):
    stage: Literal["finetune"]
    tasks: list[TaskSpec] = Field(min_length=1)
    replay: float = Field(
        0.0, ge=0, le=1, description="Against forgetting: add this fraction (of this stage's training examples) "
        "drawn from the training data of the earlier finetune/dialogue/crosstask stages.")


class DialogueStage(_StageBase):
    stage: Literal["dialogue"]
    data: list[DataSpec] = Field(min_length=1)
    eval_data: list[DataSpec] = Field(default_factory=list)
    replay: float = Field(
        0.0, ge=0, le=1, description="Against forgetting: add this fraction (of this stage's training examples) "
        "drawn from the training data of the earlier finetune/dialogue/crosstask stages.")


class CrosstaskStage(_StageBase):
    stage: Literal["crosstask"]
    mode: Literal["shared", "per_task"] = Field(
        "shared", description="shared: one adapter for all tasks; per_task: then one adapter per task on top.")
    temperature: float = Field(1.0, gt=0, description="Mixing temperature: p(task) ~ weight * n_task ** (1/T).")
    tasks: list[TaskSpec] = Field(min_length=1)
    replay: float = Field(
        0.0, ge=0, le=1, description="Against forgetting: add this fraction (of this stage's training examples) "
        "drawn from the training data of the earlier finetune/dialogue/crosstask stages.")
    per_task_train: dict[str, Any] = Field(
        default_factory=dict, description="per_task mode: train overrides for the per-task adapters.")
    router: bool = Field(
        True, description="per_task mode: also train the router, a classification adapter that picks the task "
        "of each message, from the routing message of every task record (labels: the task names).")
    router_kind: Literal["embedding", "adapter"] = Field(
        "embedding", description="embedding: a logistic-regression classifier on the embedded MiniLM's sentence "
        "embeddings (measured on the example: 0.99 held-out accuracy, fitted in seconds); adapter: a "
        "classification LoRA adapter of the language model (0.56-0.78 in the quick profile, 56 s to train).")
    router_train: dict[str, Any] = Field(default_factory=dict, description="Train overrides for the router "
                                         "(router_kind adapter).")
    tool_use: Literal["none", "general"] = Field(
        "none", description="general: mix generated general tool-use records (data/toolgen.py) into the stage's "
        "shared adapter, merged into the backbone, so every task and the backbone itself can call tools they "
        "never trained on (an API request's own `tools`). Scored after the stage on tools of other domains "
        "than training's: unseen_tool_exact, no_tool_when_none_fits, asks_when_values_missing.")
    tool_use_records: int = Field(600, ge=1, description="general tool use: generated training records "
                                  "(for the stage, and again for each task with tool_use: general).")
    tool_use_heldout: int = Field(150, ge=1, description="general tool use: generated held-out records, all of "
                                  "tools that training never shows.")


class ClientSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$", description="The data owner (a branch, a clinic).")
    data: DataSpec = Field(description="The owner's own data file: read only by that client's process.")


class FederatedStage(_StageBase):
    """One task's LoRA adapter trained on Flower by clients that keep their data (train/federated.py)."""
    stage: Literal["federated"]
    task: str = Field(pattern=r"^[A-Za-z0-9_\-]+$", description="Task name (its adapter: RUN_DIR/adapters/TASK).")
    system: str | None = Field(None, description="System prompt of the task, as for any task.")
    tools: list[str] = Field(default_factory=list, description="Tools the task may call, as for any task.")
    heldout: DataSpec = Field(description="The server's own held-out data: scored before the first round and "
                              "after each one, and in `agentmill eval` (never a client's file).")
    clients: list[ClientSpec] = Field(min_length=1, description="The data owners, one Flower client each.")
    rounds: int = Field(3, ge=1, description="Federated rounds: each client trains, the server averages.")
    local_steps: int = Field(8, ge=1, description="Optimizer steps each client trains per round.")
    fraction: float = Field(1.0, gt=0, le=1, description="Share of the clients sampled each round.")
    strategy: Literal["fedavg", "fedprox"] = Field(
        "fedavg", description="How the server combines the clients' adapters: the mean weighted by their example "
        "counts, both. fedprox also keeps each client's local training near the round's global adapter "
        "(proximal_mu), for clients whose data differ.")
    proximal_mu: float = Field(0.01, ge=0, description="fedprox only: mu of the term (mu/2)·||w - w_global||² "
                               "each client adds to its loss (0 trains as fedavg does).")
    on_client_failure: Literal["skip", "fail"] = Field(
        "skip", description="A client that fails or does not answer within round_timeout_s: skip completes the "
        "round with the others (reported); fail stops the run with the client's reason.")
    round_timeout_s: float = Field(3600, gt=0, description="How long the server waits for a round's replies.")
    client_threads: int = Field(1, ge=1, description="CPU threads of each simulated client.")
    parallel_clients: int = Field(2, ge=1, description="Simulated clients training at the same time.")
    inject_failures: dict[str, list[int]] = Field(
        default_factory=dict, description="Tests only: round -> indices of clients that raise in that round.")

    @model_validator(mode="after")
    def _mu_needs_fedprox(self):
        if "proximal_mu" in self.model_fields_set and self.strategy != "fedprox":
            raise ValueError(f"proximal_mu is an option of strategy: fedprox (this stage's is {self.strategy})")
        return self

    @field_validator("clients")
    @classmethod
    def _unique_clients(cls, clients):
        names = [c.name for c in clients]
        if len(set(names)) != len(names):
            raise ValueError(f"client names must be unique: {names}")
        return clients

    @property
    def tasks(self) -> list["TaskSpec"]:
        """The task as the rest of the pipeline sees it: only the server's held-out file is its data."""
        return [TaskSpec(name=self.task, data=self.heldout, eval_data=self.heldout, system=self.system,
                         tools=self.tools)]


Stage = Annotated[Union[PretrainStage, FinetuneStage, DialogueStage, CrosstaskStage, FederatedStage], Field(discriminator="stage")]


class Recipe(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="Run name (default: the recipe file's name without .yaml).")
    base_model: str = Field("smollm2-135m-instruct", description="Alias, Hugging Face hub id, or local HF folder.")
    seed: int = 42
    method: Literal["lora", "full"] = "lora"
    lora: LoraSpec = Field(default_factory=LoraSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    stages: list[Stage] = Field(min_length=1)
    tools: ToolsSpec = Field(default_factory=ToolsSpec, description="Tools the agent may call (per-task allow-lists).")
    media: MediaSettings = Field(default_factory=MediaSettings,
                                 description="Speech and image engines of the agent (chat, serve, data preparation).")
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named sets of dotted overrides, chosen with profile=NAME.")
    profile: str | None = Field(None, description="The profile applied (set by the profile=NAME override).")

    @field_validator("stages")
    @classmethod
    def _unique_tasks(cls, stages):
        seen: set[str] = set()
        for stage in stages:
            for task in getattr(stage, "tasks", []):
                if task.name == "router":
                    raise ValueError("task name 'router' is reserved for the task router; pick another name")
                if task.name in seen:
                    raise ValueError(f"task name '{task.name}' is used twice")
                if task.classifier == "embedding" and stage.stage != "finetune":
                    raise ValueError(f"task '{task.name}': classifier: embedding is a finetune-stage option")
                if task.tool_use != "none" and stage.stage != "crosstask":
                    raise ValueError(f"task '{task.name}': tool_use is a crosstask-stage option")
                if task.classifier == "auto":
                    fits = stage.stage == "finetune" and task.data.format == "classification"
                    task.classifier = "embedding" if fits else "generative"
                seen.add(task.name)
        return stages

    @model_validator(mode="after")
    def _per_task_needs_lora(self):
        if self.method == "full" and any(getattr(s, "mode", None) == "per_task" for s in self.stages):
            raise ValueError("crosstask mode: per_task trains one LoRA adapter per task and needs method: lora")
        return self

    def stage_train(self, stage, extra: dict | None = None) -> TrainSpec:
        """The global train options with the stage's overrides (and `extra`) applied."""
        merged = {**self.train.model_dump(), **stage.train, **(extra or {})}
        if merged.get("lr") is None:
            merged["lr"] = DEFAULT_LR[self.method]
        try:
            return TrainSpec(**merged)
        except ValidationError as err:
            raise AgentmillError(f"stage '{stage.stage}' train overrides: {err.errors()[0]['msg']}") from None

    def task_train(self, stage, task: TaskSpec) -> TrainSpec:
        """The train options of one task's own adapter (crosstask per_task): the stage's, then its
        `per_task_train`, then the task's `train`."""
        return self.stage_train(stage, {**getattr(stage, "per_task_train", {}), **task.train})

    def tasks(self) -> list[TaskSpec]:
        return [t for s in self.stages for t in getattr(s, "tasks", [])]


# ---------------------------------------------------------------- loading

def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set_dotted(tree: dict, dotted: str, value: Any, origin: str) -> None:
    parts = dotted.split(".")
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise AgentmillError(f"{origin}: '{dotted}': '{part}' is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise AgentmillError(f"{origin}: '{dotted}': '{'.'.join(parts[:i])}' is not a mapping")


def _line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location, best effort."""
    node, line = root, None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            found = None
            for k, v in node.value:
                if k.value == key:
                    found = v
                    line = k.start_mark.line + 1
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at the parent of `loc` (for did-you-mean)."""
    current: Any = model
    for key in loc[:-1]:
        if isinstance(key, int) or current is None:
            continue
        if key in ("pretrain", "finetune", "dialogue", "crosstask"):  # discriminated-union tag
            current = {"pretrain": PretrainStage, "finetune": FinetuneStage,
                       "dialogue": DialogueStage, "crosstask": CrosstaskStage}[key]
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(key)
            current = _model_in(field.annotation) if field else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _explain(err: ValidationError, path: Path, root: yaml.Node | None) -> AgentmillError:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        shown = ".".join(str(p) for p in loc if p not in ("pretrain", "finetune", "dialogue", "crosstask"))
        yaml_loc = tuple(p for p in loc if p not in ("pretrain", "finetune", "dialogue", "crosstask"))
        line = _line_of(root, yaml_loc)
        where = f"{path}:{line}" if line else str(path)
        if e["type"] == "extra_forbidden":
            known = _known_fields(Recipe, loc)
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean '{guess[0]}'?" if guess else (f"; known keys: {', '.join(known)}" if known else "")
            lines.append(f"{where}: unknown key '{shown}'{hint}")
        elif e["type"] == "literal_error" and isinstance(e.get("input"), str):
            choices = re.findall(r"'([^']*)'", e.get("ctx", {}).get("expected", ""))
            guess = difflib.get_close_matches(e["input"], choices, n=1)
            hint = f"; did you mean '{guess[0]}'?" if guess else ""
            lines.append(f"{where}: {shown}: '{e['input']}' is not one of {', '.join(choices)}{hint}")
        else:
            lines.append(f"{where}: {shown}: {e['msg']}")
    return AgentmillError("invalid recipe:\n" + "\n".join(lines))


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read, override, validate and resolve a recipe. Data paths become absolute."""
    path = Path(path)
    if not path.is_file():
        raise AgentmillError(f"recipe {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise AgentmillError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise AgentmillError(f"{path}: a recipe is a YAML mapping (name, base_model, stages, ...)")
    raw = copy.deepcopy(raw)
    if "name" not in raw and re.fullmatch(r"[A-Za-z0-9_.\-]+", path.stem):
        raw["name"] = path.stem  # like a run directory named after its recipe file
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise AgentmillError(f"override '{item}' is not key=value")
        key, value = item.split("=", 1)
        pairs.append((key.strip(), _parse_value(value)))
    for key, value in pairs:
        if key == "profile":
            profiles = raw.get("profiles") or {}
            if value not in profiles:
                raise AgentmillError(f"{path}: no profile '{value}'; profiles: {', '.join(profiles) or 'none'}")
            for k, v in profiles[value].items():
                _set_dotted(raw, k, copy.deepcopy(v), f"{path}: profiles.{value}")
            raw["profile"] = value
    for key, value in pairs:
        if key != "profile":
            _set_dotted(raw, key, value, "command line")
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as err:
        raise _explain(err, path, root) from None
    base = path.parent.resolve()
    for stage in recipe.stages:
        specs = list(getattr(stage, "data", [])) + list(getattr(stage, "eval_data", []))
        specs += [c.data for c in getattr(stage, "clients", [])]  # federated: the data owners' files
        for task in getattr(stage, "tasks", []):
            specs += [task.data] + ([task.eval_data] if task.eval_data else [])
        for spec in specs:
            spec.path = (base / spec.path).resolve()
        recipe.stage_train(stage)  # validates stage overrides early
        if getattr(stage, "per_task_train", None):
            recipe.stage_train(stage, stage.per_task_train)
        if getattr(stage, "router_train", None):
            recipe.stage_train(stage, stage.router_train)
        for task in getattr(stage, "tasks", []):
            if task.train:
                recipe.task_train(stage, task)
    recipe.tools.modules = [str((base / m).resolve()) if m.endswith(".py") else m for m in recipe.tools.modules]
    for tool_settings in recipe.tools.settings.values():
        for key in ("folder", "database", "path"):
            if isinstance(tool_settings.get(key), str):
                tool_settings[key] = str((base / tool_settings[key]).resolve())
    media = recipe.media
    if media.eval_data is not None:
        media.eval_data = (base / media.eval_data).resolve()
    for key in ("speech_model", "image_model"):  # model folders, like data, are relative to the recipe
        folder = getattr(media, key)
        if folder and not Path(folder).expanduser().is_absolute():
            setattr(media, key, str((base / folder).resolve()))
    mb = Path(recipe.base_model).expanduser()
    if recipe.base_model.startswith((".", "/", "~")) and not mb.is_absolute():
        recipe.base_model = str((base / mb).resolve())
    return recipe


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML (written into the run directory)."""
    return yaml.safe_dump(recipe.model_dump(mode="json", exclude={"profiles"}), sort_keys=False)
