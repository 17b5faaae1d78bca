"""RUN_DIR/report.md and RUN_DIR/plots/*.png from the files a training run leaves behind.

Inputs (all optional except that a run without manifest.json gets a minimal report):

metrics.jsonl — one JSON object per line, appended while training (train.tracking.MetricsLogger)::

    {"stage": "pretrain",          # stage name
     "task": null | "intent",      # set for per-task adapters (crosstask mode: per_task)
     "split": "train" | "eval",
     "step": 12,                   # optimizer step within the stage (restarts at 1 per stage/task)
     "loss": 2.41,
     "lr": 0.0002,                 # train only
     "tokens_per_s": 1830.5,       # train only
     "tokens": 49152,              # trained tokens so far in the stage
     "time": 26.9}                 # seconds since the stage started

manifest.json — written once all stages are trained (train.pipeline)::

    {"name": "finance-advisor", "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
     "created": "2025-01-01T12:00:00+00:00", "agentmill_version": "0.1.0", "backbone": "model",
     "stages": [{"stage": "pretrain", "index": 1,
                 "adapter": "stages/01-pretrain/adapter" | null,
                 "before": {"eval_loss": 3.1, "perplexity": 22.0},       # flat: one data set
                 "after": {...},
                 "train_tokens": 123456, "wall_s": 61.2, "tokens_per_s": 2017.3, "steps": 40,
                 "final_train_loss": 2.2},                                # optional
                {"stage": "finetune", "index": 2, ...,
                 "before": {"intent": {"accuracy": 0.4, "macro_f1": 0.3}},  # nested: per task
                 "after": {"intent": {...}}},
                {"stage": "crosstask", ..., "per_task": {"intent": {"after": {...}, "steps": 10,
                 "train_tokens": 900, "wall_s": 3.0, "tokens_per_s": 300.0}}}],  # per_task mode only
     "tasks": {"intent": {"stage": "finetune", "format": "classification",
                          "adapter": null | "adapters/intent",
                          "labels": ["billing", "fraud"]}}}                 # classification only

    "before"/"after" are either {METRIC: VALUE} or {TASK: {METRIC: VALUE}}; either may be missing
    or empty (no held-out data).

eval.json — written by `agentmill eval` (eval.run_eval)::

    {"tasks": {NAME: {METRIC: VALUE}},
     "stages": {STAGE: {"before": {...}, "after": {...}}}}

Outputs: report.md (title, stage before/after tables, throughput, per-task evaluation, tasks and
their adapters, links to the plots) and plots/loss-STAGE.png per stage (train loss vs step, eval
loss points overlaid) plus plots/loss-all.png (all stages in training order). Links are relative,
so the report survives moving the run directory. Numbers are shown to 4 significant digits
(integers, such as token counts, exactly).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

__all__ = ["write_report", "format_table", "print_eval_table", "fmt_value", "read_metrics"]

MISSING = "—"


# --------------------------------------------------------------------------- formatting

def fmt_value(value: Any) -> str:
    """A table cell: floats to 4 significant digits, integers exact, None as an em dash."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == 0:
            return "0"
        exponent = math.floor(math.log10(abs(value)))
        if 4 <= exponent < 15:  # 12345.6 → "12350", not "1.235e+04"
            return f"{round(value, 3 - exponent):.0f}"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_value(v) for v in value)
    return str(value)


def _fmt_change(before: Any, after: Any) -> str:
    if not (_is_number(before) and _is_number(after)):
        return MISSING
    diff = float(after) - float(before)
    if math.isnan(diff):
        return MISSING
    text = fmt_value(diff)
    return "+" + text if diff > 0 else text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_NUMERIC_TEXT = re.compile(r"^(?:[+-]?[\d,]*\.?\d+(?:e[+-]?\d+)?|[+-]?inf|nan|—)$")


def _numeric_cell(value: Any) -> bool:
    return _is_number(value) or (isinstance(value, str) and _NUMERIC_TEXT.match(value) is not None)


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else fmt_value(value)
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Markdown table of `rows` (dicts keyed by column name); missing cells show "—".

    Columns of numbers (or number-like text such as "+0.5") are right-aligned.
    """
    header = "| " + " | ".join(_cell(c) for c in columns) + " |"
    aligns = []
    for col in columns:
        values = [r.get(col) for r in rows if r.get(col) is not None]
        numeric = values and all(_numeric_cell(v) for v in values) and any(v != MISSING for v in values)
        aligns.append("---:" if numeric else "---")
    lines = [header, "| " + " | ".join(aligns) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(col)) for col in columns) + " |")
    return "\n".join(lines)


def _union_keys(dicts) -> list[str]:
    keys: list[str] = []
    for d in dicts:
        for k in d or {}:
            if k not in keys:
                keys.append(k)
    return keys


# --------------------------------------------------------------------------- inputs

def _read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl; unreadable lines (e.g. cut off by a crash) are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "stage" in rec and "step" in rec and "loss" in rec:
            records.append(rec)
    return records


def _series(records: list[dict]) -> list[dict]:
    """Loss curves in order of first appearance: one per (stage, task) and training run.

    A train step that does not advance the (stage, task)'s last step starts a new run
    (the same stage name used twice in a recipe).
    """
    series: list[dict] = []
    current: dict[tuple, dict] = {}
    for rec in records:
        key = (rec["stage"], rec.get("task"))
        step, loss = rec["step"], rec["loss"]
        loss = float("nan") if loss is None else float(loss)
        s = current.get(key)
        split = rec.get("split", "train")
        if s is None or (split == "train" and s["train"] and step <= s["train"][-1][0]):
            runs = sum(1 for x in series if (x["stage"], x["task"]) == key)
            s = {"stage": key[0], "task": key[1], "run": runs + 1, "train": [], "eval": []}
            series.append(s)
            current[key] = s
        (s["eval"] if split == "eval" else s["train"]).append((step, loss))
    return series


def _series_label(s: dict, multi_run: bool) -> str:
    label = s["stage"] + (f" / {s['task']}" if s["task"] else "")
    return label + (f" (run {s['run']})" if multi_run else "")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-") or "stage"


# --------------------------------------------------------------------------- plots

def _new_figure(width: float = 8.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _integer_steps(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _plot_stage(path: Path, run_name: str, stage: str, series: list[dict]) -> None:
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    multi = len(series) > 1
    for i, s in enumerate(series):
        color = f"C{i % 10}"
        name = (s["task"] or "shared") + (f", run {s['run']}" if s["run"] > 1 else "")
        suffix = f" ({name.strip()})" if multi and name.strip() else ""
        if s["train"]:
            xs, ys = zip(*s["train"])
            ax.plot(xs, ys, color=color, linewidth=1.5, label="train loss" + suffix)
        if s["eval"]:
            xs, ys = zip(*s["eval"])
            ax.plot(xs, ys, color=color, linestyle="--", linewidth=1, marker="o", markersize=6,
                    markerfacecolor="white", markeredgewidth=1.5, label="eval loss" + suffix)
    ax.set_title(f"{run_name} — {stage}: loss vs step")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    _integer_steps(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _plot_combined(path: Path, run_name: str, series: list[dict]) -> None:
    fig = _new_figure(10.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    offset = 0
    keys = [(s["stage"], s["task"]) for s in series]
    has_eval = False
    boundaries = []
    for i, s in enumerate(series):
        color = f"C{i % 10}"
        steps = [p[0] for p in s["train"] + s["eval"]]
        label = _series_label(s, keys.count((s["stage"], s["task"])) > 1)
        if s["train"]:
            xs, ys = zip(*s["train"])
            ax.plot([x + offset for x in xs], ys, color=color, linewidth=1.5, label=label)
        else:
            ax.plot([], [], color=color, label=label)
        if s["eval"]:
            has_eval = True
            xs, ys = zip(*s["eval"])
            ax.plot([x + offset for x in xs], ys, color=color, linestyle="--", linewidth=1, marker="o",
                    markersize=6, markerfacecolor="white", markeredgewidth=1.5)
        if i:
            boundaries.append(offset)
        offset += max(steps, default=0)
    for x in boundaries:
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
    if has_eval:
        ax.plot([], [], color="black", linestyle="--", marker="o", markerfacecolor="white", label="eval loss")
    ax.set_title(f"{run_name}: loss across stages (training order)")
    ax.set_xlabel("optimizer step, stages one after another")
    ax.set_ylabel("loss")
    _integer_steps(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _write_plots(run_dir: Path, run_name: str, series: list[dict]) -> list[tuple[str, str]]:
    """Writes the PNGs; returns (title, path relative to run_dir), the combined plot last."""
    if not series:
        return []
    plots_dir = run_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    out = []
    stages = list(dict.fromkeys(s["stage"] for s in series))
    for stage in stages:
        rel = f"plots/loss-{_slug(stage)}.png"
        _plot_stage(run_dir / rel, run_name, stage, [s for s in series if s["stage"] == stage])
        out.append((f"{stage}: loss vs step", rel))
    if len(series) > 1:
        rel = "plots/loss-all.png"
        _plot_combined(run_dir / rel, run_name, series)
        out.append(("all stages: loss vs step", rel))
    return out


# --------------------------------------------------------------------------- report sections

def _stage_metrics_table(before: dict | None, after: dict | None) -> str | None:
    before, after = before or {}, after or {}
    if not before and not after:
        return None
    nested = any(isinstance(v, dict) for v in list(before.values()) + list(after.values()))
    rows = []
    if nested:
        for task in _union_keys([before, after]):
            b, a = before.get(task) or {}, after.get(task) or {}
            if not isinstance(b, dict) or not isinstance(a, dict):
                continue
            for metric in _union_keys([b, a]):
                rows.append({"task": task, "metric": metric, "before": b.get(metric), "after": a.get(metric),
                             "change": _fmt_change(b.get(metric), a.get(metric))})
        return format_table(rows, ["task", "metric", "before", "after", "change"])
    for metric in _union_keys([before, after]):
        rows.append({"metric": metric, "before": before.get(metric), "after": after.get(metric),
                     "change": _fmt_change(before.get(metric), after.get(metric))})
    return format_table(rows, ["metric", "before", "after", "change"])


def _stage_title(stage: dict, position: int) -> str:
    return f"{stage.get('index', position)}. {stage.get('stage', '?')}"


def _adapter_text(adapter: str | None, merged: bool) -> str:
    if adapter:
        return f"[`{adapter}`]({adapter})" + (" (merged into the backbone)" if merged else "")
    return "none (full fine-tuning, weights in the backbone)" if merged else "none (backbone)"


def _stages_section(stages: list[dict]) -> list[str]:
    lines = ["## Stages", ""]
    if not stages:
        return lines + ["_No stages recorded._", ""]
    for pos, stage in enumerate(stages, 1):
        lines += [f"### {_stage_title(stage, pos)}", ""]
        lines += [f"Adapter: {_adapter_text(stage.get('adapter'), merged=True)}", ""]
        table = _stage_metrics_table(stage.get("before"), stage.get("after"))
        lines += [table if table else "_No before/after metrics (no held-out data)._", ""]
        if not stage.get("before") and stage.get("after"):
            lines += ["_No metrics before training._", ""]
    return lines


def _throughput_section(stages: list[dict]) -> list[str]:
    rows = []
    for pos, stage in enumerate(stages, 1):
        title = _stage_title(stage, pos)
        rows.append(_throughput_row(title, stage))
        for task, info in (stage.get("per_task") or {}).items():
            rows.append(_throughput_row(f"{title} / {task}", info or {}))
    columns = ["stage", "steps", "train tokens", "wall time (s)", "tokens/s", "final train loss"]
    if not any(r.get("final train loss") is not None for r in rows):
        columns.remove("final train loss")
    return ["## Throughput", "", format_table(rows, columns) if rows else "_No stages recorded._", ""]


def _throughput_row(title: str, info: dict) -> dict:
    return {"stage": title, "steps": info.get("steps"), "train tokens": info.get("train_tokens"),
            "wall time (s)": info.get("wall_s"), "tokens/s": info.get("tokens_per_s"),
            "final train loss": info.get("final_train_loss")}


def _eval_section(eval_json: dict | None) -> list[str]:
    lines = ["## Evaluation", ""]
    if eval_json is None:
        return lines + ["_No evaluation: eval.json not found (run `agentmill eval RUN_DIR`)._", ""]
    tasks = eval_json.get("tasks") or {}
    if not tasks:
        return lines + ["_No evaluation: eval.json has no task results._", ""]
    metrics = _union_keys(v for v in tasks.values() if isinstance(v, dict))
    rows = [{"task": name, **(values if isinstance(values, dict) else {})} for name, values in tasks.items()]
    return lines + [format_table(rows, ["task", *metrics]), ""]


def _tasks_section(tasks: dict) -> list[str]:
    lines = ["## Tasks", ""]
    if not tasks:
        return lines + ["_No tasks._", ""]
    rows = []
    for name, info in tasks.items():
        info = info or {}
        labels = info.get("labels") or []
        shown = ", ".join(str(x) for x in labels[:12]) + (f", … (+{len(labels) - 12})" if len(labels) > 12 else "")
        adapter = info.get("adapter")
        where = (f"`{adapter}`" if adapter else f"classifier on embeddings, `{info['classifier']}`"
                 if info.get("classifier") else "backbone (merged)")
        rows.append({"task": name, "stage": info.get("stage"), "format": info.get("format"),
                     "adapter": where, "labels": shown or MISSING})
    columns = ["task", "stage", "format", "adapter"]
    if any(r["labels"] != MISSING for r in rows):
        columns.append("labels")
    return lines + [format_table(rows, columns), ""]


def _plots_section(plots: list[tuple[str, str]]) -> list[str]:
    lines = ["## Loss curves", ""]
    if not plots:
        return lines + ["_No training metrics logged (metrics.jsonl missing or empty)._", ""]
    for title, rel in plots:
        lines += [f"### {title}", "", f"![{title}]({rel})", "", f"[{rel}]({rel})", ""]
    return lines


# --------------------------------------------------------------------------- public

def write_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report.md and RUN_DIR/plots/*.png; returns the report's path."""
    run_dir = Path(run_dir)
    manifest = _read_json(run_dir / "manifest.json") or {}
    eval_json = _read_json(run_dir / "eval.json")
    records = read_metrics(run_dir / "metrics.jsonl")

    name = manifest.get("name") or run_dir.name
    base_model = manifest.get("base_model") or "unknown"
    stages = [s for s in manifest.get("stages") or [] if isinstance(s, dict)]
    plots = _write_plots(run_dir, name, _series(records))

    lines = [f"# {name}: training report", "", f"Base model: `{base_model}`", ""]
    facts = [("created", manifest.get("created")), ("agentmill", manifest.get("agentmill_version")),
             ("backbone", f"`{manifest['backbone']}`" if manifest.get("backbone") else None),
             ("method", manifest.get("method")), ("precision", manifest.get("precision"))]
    lines += [f"- {k}: {v}" for k, v in facts if v]
    if not manifest:
        lines += ["_No manifest.json: the run did not finish._"]
    lines.append("")
    lines += _stages_section(stages)
    lines += _throughput_section(stages)
    lines += _eval_section(eval_json)
    lines += _tasks_section(manifest.get("tasks") or {})
    lines += _plots_section(plots)

    path = run_dir / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def print_eval_table(eval_json: dict, console=None) -> None:
    """Print eval.json's task results as a rich table: one row per task, one column per metric."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    tasks = (eval_json or {}).get("tasks") or {}
    if not tasks:
        console.print("no task evaluations")
        return
    metrics = _union_keys(v for v in tasks.values() if isinstance(v, dict))
    table = Table(title="Evaluation")
    table.add_column("task", style="bold")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for name, values in tasks.items():
        values = values if isinstance(values, dict) else {}
        table.add_row(str(name), *(fmt_value(values.get(m)) for m in metrics))
    console.print(table)
