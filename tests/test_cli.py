"""The `agentmill` command: clear errors (no traceback, exit 2) for bad recipes and data."""

import json
import sys

import pytest

from agentmill import cli


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["agentmill", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def write(tmp_path, data_lines, fmt="classification", extra=""):
    (tmp_path / "d.jsonl").write_text("".join(l + "\n" for l in data_lines))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\nstages:\n  - stage: finetune\n    tasks:\n"
                      f"      - {{name: a, data: {{path: d.jsonl, format: {fmt}}}}}\n{extra}")
    return recipe


def test_data_check_reports_every_bad_record_with_file_and_line(tmp_path, monkeypatch, capsys):
    good = json.dumps({"text": "hi", "label": "x"})
    recipe = write(tmp_path, [good, '{"text": "hi", "label": 1}', good, "{oops", json.dumps({"text": "x"})])
    code, out, err = run_cli(monkeypatch, capsys, "data", "check", str(recipe))
    assert code == 2
    path = tmp_path / "d.jsonl"
    assert f'{path}:2: "label" must be a string, got int' in err
    assert f"{path}:4: invalid JSON" in err
    assert f'{path}:5: missing field "label"' in err
    assert "Traceback" not in err


def test_unknown_format_and_missing_file(tmp_path, monkeypatch, capsys):
    recipe = write(tmp_path, ["{}"], fmt="clasification")
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", str(recipe))
    assert code == 2 and "did you mean 'classification'" in err
    recipe = write(tmp_path, ["{}"])
    (tmp_path / "d.jsonl").unlink()
    code, _, err = run_cli(monkeypatch, capsys, "train", str(recipe))
    assert code == 2 and f"{tmp_path / 'd.jsonl'}" in err and "Traceback" not in err


def test_empty_dataset(tmp_path, monkeypatch, capsys):
    recipe = write(tmp_path, [])
    code, _, err = run_cli(monkeypatch, capsys, "data", "check", str(recipe))
    assert code == 2 and "empty" in err


def test_unknown_recipe_key_via_cli(tmp_path, monkeypatch, capsys):
    recipe = write(tmp_path, [json.dumps({"text": "hi", "label": "x"})], extra="trian: {lr: 1}\n")
    code, _, err = run_cli(monkeypatch, capsys, "train", str(recipe))
    assert code == 2 and f"{recipe}:6: unknown key 'trian'; did you mean 'train'?" in err


def test_data_check_prints_statistics(tmp_path, monkeypatch, capsys):
    recipe = write(tmp_path, [json.dumps({"text": f"hello {i}", "label": "ab"[i % 2]}) for i in range(10)])
    monkeypatch.setattr(sys, "argv", ["agentmill", "data", "check", str(recipe)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr().out
    assert e.value.code in (0, None)
    assert "d.jsonl" in out and "classification" in out and "all 1 data files are valid" in out


# --- agent commands: chat --session, run --goal, sessions ------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tokenizer, tiny):
    root = tmp_path_factory.mktemp("run")
    tiny.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    manifest = {"name": "tiny", "backbone": "model", "stages": [], "precision_requested": "fp32",
                "tasks": {"math": {"format": "chat", "adapter": None, "system": "Be brief.", "tools": ["calculator"]}},
                "tools": {"modules": [], "settings": {}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_goal_mode_needs_approval_or_yes(tiny_run, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "run", str(tiny_run), "--goal", "add 2 and 2", "--db",
                           str(tmp_path / "s.db"))
    assert code == 2 and "pass --yes" in err


def test_goal_mode_runs_and_is_stored_as_a_session(tiny_run, tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "s.db")
    code, out, _ = run_cli(monkeypatch, capsys, "run", str(tiny_run), "--goal", "add 2 and 2", "--yes",
                           "--task", "math", "--db", db, "--max-new-tokens", "8")
    assert code in (0, None)
    assert "goal: add 2 and 2" in out and "answer:" in out and "session" in out
    from agentmill.store import SQLiteSessionStore

    store = SQLiteSessionStore(db)
    [session] = store.list()
    assert session.title == "goal: add 2 and 2" and session.run == str(tiny_run.resolve())
    kinds = [m.kind for m in store.messages(session.id)]
    assert kinds[:2] == ["user", "route"] and kinds[-1] == "answer"
    code, out, _ = run_cli(monkeypatch, capsys, "sessions", "show", session.id, "--db", db)
    assert code in (0, None) and "add 2 and 2" in out


def test_chat_stores_and_resumes_a_session(tiny_run, tmp_path, monkeypatch, capsys):
    db = str(tmp_path / "s.db")
    lines = iter(["hello there", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert run_cli(monkeypatch, capsys, "chat", str(tiny_run), "--db", db, "--max-new-tokens", "6")[0] in (0, None)
    from agentmill.store import SQLiteSessionStore

    [session] = SQLiteSessionStore(db).list()
    assert session.title == "hello there" and session.prompt_tokens > 0
    lines = iter(["/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    code, out, _ = run_cli(monkeypatch, capsys, "chat", str(tiny_run), "--db", db, "--session", session.id)
    assert f"session {session.id}" in out and "resumed: 2 earlier messages" in out
    code, _, err = run_cli(monkeypatch, capsys, "chat", str(tiny_run), "--db", db, "--session", "nope")
    assert code == 2 and "no session with id 'nope'" in err


def test_env_prints_what_a_bug_report_needs(monkeypatch, capsys, tmp_path):
    import torch

    from agentmill import hardware

    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path))
    monkeypatch.setattr(hardware, "_probe_memo", None)
    code, out, _ = run_cli(monkeypatch, capsys, "env", "--json")
    info = json.loads(out)
    assert code == 0 and info["versions"]["torch"] == torch.__version__
    assert info["cpu"]["model"] == hardware.cpu_model() and info["cpu"]["torch_threads"] == torch.get_num_threads()
    assert info["probe"]["fp32_gflops"] > 0 and info["probe"]["bf16_gflops"] > 0
    # what `auto` chooses, and the measurement it was chosen from, are both in the report
    assert info["precision"]["cpu"]["name"] == hardware.choose_precision("auto", "cpu").name
    assert (tmp_path / "hardware").is_dir()
    code, out, _ = run_cli(monkeypatch, capsys, "env")
    assert code == 0 and "precision auto (cpu)" in out and "matmul fp32 / bf16" in out and hardware.cpu_model() in out
