import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from agentmill.eval.report import fmt_value, format_table, print_eval_table, write_report

MANIFEST = {
    "name": "finance-advisor",
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "created": "2025-01-01T12:00:00+00:00",
    "agentmill_version": "0.1.0",
    "backbone": "model",
    "stages": [
        {"stage": "pretrain", "index": 1, "adapter": "stages/01-pretrain/adapter",
         "before": {"eval_loss": 3.1, "perplexity": 22.19795},
         "after": {"eval_loss": 2.5, "perplexity": 12.18249},
         "train_tokens": 123456, "wall_s": 61.23456, "tokens_per_s": 2016.123, "steps": 40},
        {"stage": "finetune", "index": 2, "adapter": None,
         "before": {},
         "after": {"intent": {"accuracy": 0.8125, "macro_f1": 0.7777777}},
         "train_tokens": 5000, "wall_s": 10.0, "tokens_per_s": 500.0, "steps": 8},
    ],
    "tasks": {
        "intent": {"stage": "finetune", "format": "classification", "adapter": None,
                   "labels": ["billing", "fraud", "other"]},
        "qa": {"stage": "finetune", "format": "instruction", "adapter": "adapters/qa"},
    },
}

EVAL = {"tasks": {"intent": {"accuracy": 0.8125, "macro_f1": 0.7777777},
                  "qa": {"eval_loss": 1.234567, "exact_match": 0.25, "token_f1": 0.5}},
        "stages": {}}


def _metrics_lines() -> list[dict]:
    lines = []
    for step in range(1, 11):
        lines.append({"stage": "pretrain", "task": None, "split": "train", "step": step, "loss": 3.0 - 0.05 * step,
                      "lr": 1e-4, "tokens_per_s": 2000.0, "tokens": step * 1000, "time": step * 0.5})
        if step % 5 == 0:
            lines.append({"stage": "pretrain", "task": None, "split": "eval", "step": step,
                          "loss": 3.05 - 0.05 * step, "tokens": step * 1000, "time": step * 0.5})
    for step in range(1, 9):  # no eval points for this stage
        lines.append({"stage": "finetune", "task": None, "split": "train", "step": step, "loss": 1.5 / step,
                      "lr": 2e-4, "tokens_per_s": 500.0, "tokens": step * 600, "time": step * 1.2})
    return lines


def _make_run(tmp_path: Path, eval_json: dict | None = EVAL, metrics: bool = True) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(MANIFEST))
    if eval_json is not None:
        (run / "eval.json").write_text(json.dumps(eval_json))
    if metrics:
        text = "\n".join(json.dumps(r) for r in _metrics_lines()) + "\n"
        (run / "metrics.jsonl").write_text(text + '{"stage": "finetune", "tru')  # cut off by a crash
    return run


def _row(text: str, *cells: str) -> bool:
    pattern = r"^\|\s*" + r"\s*\|\s*".join(re.escape(c) for c in cells) + r"\s*\|"
    return re.search(pattern, text, re.MULTILINE) is not None


def test_fmt_value():
    assert fmt_value(3.14159) == "3.142"
    assert fmt_value(0.7777777) == "0.7778"
    assert fmt_value(2016.123) == "2016"
    assert fmt_value(12345.6) == "12350"
    assert fmt_value(123456) == "123,456"
    assert fmt_value(2e-5) == "2e-05"
    assert fmt_value(float("inf")) == "inf"
    assert fmt_value(None) == "—"


def test_format_table():
    table = format_table([{"a": "x", "b": 1.0}, {"a": "y|z"}], ["a", "b"])
    assert table.splitlines() == ["| a | b |", "| --- | ---: |", "| x | 1 |", "| y\\|z | — |"]
    assert format_table([{"d": "+0.5"}, {"d": "—"}, {"d": "-1e-05"}], ["d"]).splitlines()[1] == "| ---: |"
    assert format_table([{"d": "—"}], ["d"]).splitlines()[1] == "| --- |"


def test_write_report(tmp_path):
    run = _make_run(tmp_path)
    path = write_report(run)
    assert path == run / "report.md"
    text = path.read_text()

    assert "finance-advisor" in text.splitlines()[0]
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in text
    # stage tables: flat (pretrain) and per task (finetune, no "before")
    assert _row(text, "eval_loss", "3.1", "2.5", "-0.6")
    assert _row(text, "perplexity", "22.2", "12.18", "-10.02")
    assert _row(text, "intent", "accuracy", "—", "0.8125", "—")
    assert _row(text, "intent", "macro_f1", "—", "0.7778", "—")
    assert "stages/01-pretrain/adapter" in text
    # throughput
    assert _row(text, "1. pretrain", "40", "123,456", "61.23", "2016")
    assert _row(text, "2. finetune", "8", "5,000", "10", "500")
    # evaluation per task
    assert _row(text, "task", "accuracy", "macro_f1", "eval_loss", "exact_match", "token_f1")
    assert _row(text, "intent", "0.8125", "0.7778", "—", "—", "—")
    assert _row(text, "qa", "—", "—", "1.235", "0.25", "0.5")
    # tasks and their adapters
    assert _row(text, "qa", "finetune", "instruction", "`adapters/qa`")
    assert _row(text, "intent", "finetune", "classification", "backbone (merged)", "billing, fraud, other")

    pngs = sorted((run / "plots").glob("*.png"))
    assert {p.name for p in pngs} == {"loss-pretrain.png", "loss-finetune.png", "loss-all.png"}
    for png in pngs:
        assert png.stat().st_size > 1000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rel = png.relative_to(run).as_posix()
        assert f"]({rel})" in text


def test_write_report_without_eval(tmp_path):
    run = _make_run(tmp_path, eval_json=None)
    text = write_report(run).read_text()
    assert "no evaluation" in text.lower()
    assert _row(text, "eval_loss", "3.1", "2.5", "-0.6")
    assert (run / "plots" / "loss-pretrain.png").stat().st_size > 0


def test_write_report_minimal_run(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    text = write_report(run).read_text()
    assert text.startswith("# bare")
    assert "no evaluation" in text.lower()
    assert "No training metrics logged" in text
    assert not (run / "plots").exists()


def test_write_report_repeated_stage_and_per_task(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    manifest = dict(MANIFEST, stages=[
        {"stage": "crosstask", "index": 1, "adapter": "stages/01-crosstask/adapter",
         "before": {"qa": {"eval_loss": 2.0}}, "after": {"qa": {"eval_loss": 1.5}},
         "train_tokens": 100, "wall_s": 1.0, "tokens_per_s": 100.0, "steps": 3,
         "per_task": {"qa": {"after": {"eval_loss": 1.5}, "steps": 2, "train_tokens": 50, "wall_s": 0.5,
                             "tokens_per_s": 100.0}}}])
    (run / "manifest.json").write_text(json.dumps(manifest))
    recs = [{"stage": "crosstask", "task": None, "split": "train", "step": s, "loss": 2.0 - 0.1 * s} for s in (1, 2, 3)]
    recs += [{"stage": "crosstask", "task": "qa", "split": "train", "step": s, "loss": 1.6 - 0.1 * s} for s in (1, 2)]
    recs += [{"stage": "crosstask", "task": "qa", "split": "eval", "step": 2, "loss": 1.5}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    text = write_report(run).read_text()
    assert _row(text, "1. crosstask / qa", "2", "50", "0.5", "100")
    assert _row(text, "qa", "eval_loss", "2", "1.5", "-0.5")
    assert (run / "plots" / "loss-crosstask.png").exists()
    assert (run / "plots" / "loss-all.png").exists()


def test_print_eval_table():
    console = Console(record=True, width=120)
    print_eval_table(EVAL, console)
    out = console.export_text()
    assert "accuracy" in out and "token_f1" in out
    assert re.search(r"intent\s*│\s*0\.8125\s*│\s*0\.7778", out)
    assert re.search(r"qa\s*│\s*—\s*│\s*—\s*│\s*1\.235\s*│\s*0\.25\s*│\s*0\.5", out)

    console = Console(record=True, width=80)
    print_eval_table({"tasks": {}}, console)
    assert "no task evaluations" in console.export_text()


@pytest.mark.parametrize("bad", ["", "not json", "[1, 2]"])
def test_write_report_bad_eval_json(tmp_path, bad):
    run = _make_run(tmp_path, eval_json=None)
    (run / "eval.json").write_text(bad)
    assert "no evaluation" in write_report(run).read_text().lower()
