"""export --to hf: merged per-task folders that plain transformers loads, whose logits equal the
run's adapter path, and whose chat template renders exactly what agentmill renders."""

import copy
import json

import pytest
import torch

from agentmill.data.render import render
from agentmill.export.common import ExportError
from agentmill.export.hf import export_hf
from agentmill.export.template import tool_aware_template
from agentmill.model.run import RunModel
from serve_util import SYSTEM_T1, build_run

TOOLS = [{"type": "function", "function": {
    "name": "account_lookup", "description": "Look up an account.",
    "parameters": {"type": "object", "required": ["account_id"], "properties": {
        "account_id": {"type": "string", "description": "the account number"},
        "kind": {"enum": ["savings", "checking"]}, "limit": {"type": "integer", "default": 3},
        "tags": {"type": "array", "items": {"type": "string"}}, "note": {"type": ["string", "null"]}}}}},
    {"type": "function", "function": {"name": "calculator", "parameters": {}}}]

CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "You are a bank."},
     {"role": "user", "content": [{"type": "text", "text": "Balance of "}, {"type": "text", "text": "10428?"}]},
     {"role": "assistant", "content": None, "tool_calls": [
         {"id": "c1", "type": "function", "function": {"name": "account_lookup", "arguments": {"account_id": "10428"}}}]},
     {"role": "tool", "tool_call_id": "c1", "content": '{"balance": 12.5}'},
     {"role": "assistant", "content": "It holds $12.50 — café"}],
    [{"role": "user", "content": "sums"},
     {"role": "assistant", "content": "Let me work it out.", "tool_calls": [
         {"function": {"name": "calculator", "arguments": {"expression": "1+1"}}},
         {"function": {"name": "calculator", "arguments": {"expression": "2*3"}}}]}],
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer):
    return build_run(tmp_path_factory.mktemp("export") / "run", tokenizer)


@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
def test_the_exported_template_renders_what_agentmill_renders(tokenizer, conversation):
    exported = copy.deepcopy(tokenizer)
    exported.chat_template = tool_aware_template(tokenizer)
    messages = CONVERSATIONS[conversation]
    for tools in (None, TOOLS):
        for prompt in (False, True):
            ours = render(tokenizer, messages, add_generation_prompt=prompt, tools=tools)
            theirs = exported.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=prompt)
            assert theirs == ours
            assert render(exported, messages, add_generation_prompt=prompt, tools=tools) == ours


def test_the_task_prompt_is_the_default_system_message(tokenizer):
    exported = copy.deepcopy(tokenizer)
    exported.chat_template = tool_aware_template(tokenizer, system="You are Northwind's agent \\ o'clock.")
    user = [{"role": "user", "content": "hi"}]
    with_system = [{"role": "system", "content": "You are Northwind's agent \\ o'clock."}] + user
    assert exported.apply_chat_template(user, tools=TOOLS, tokenize=False) == render(tokenizer, with_system, tools=TOOLS)
    other = [{"role": "system", "content": "Be brief."}] + user  # a caller's own system message wins
    assert exported.apply_chat_template(other, tokenize=False) == render(tokenizer, other)


def test_hf_export_logits_equal_the_adapter_path(run_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "hf"
    manifest = export_hf(run_dir, out)
    assert manifest["tasks"] == ["t1", "t2", "merged", "intent"]  # every chat task, not `domain`
    assert not list(tmp_path.glob(".*partial"))
    run = RunModel.load(run_dir, dtype=torch.float32, device="cpu")
    ids = run.tokenizer(render(run.tokenizer, [{"role": "user", "content": "What is my balance?"}],
                               add_generation_prompt=True), return_tensors="pt")["input_ids"]
    outputs = {}
    for task in ("t1", "t2", "merged"):
        model = AutoModelForCausalLM.from_pretrained(out / task, dtype=torch.float32).eval()
        run.use_task(task)
        with torch.no_grad():
            ours = run.model(ids).logits
            theirs = model(ids).logits
        torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
        outputs[task] = theirs
    assert not torch.allclose(outputs["t1"], outputs["t2"])  # the adapters were really merged
    card = json.loads((out / "t2" / "agentmill_task.json").read_text())
    assert [t["function"]["name"] for t in card["tools"]] == ["calculator"] and card["adapter_merged"]
    assert json.loads((out / "t1" / "agentmill_task.json").read_text())["system"] == SYSTEM_T1
    tokenizer = AutoTokenizer.from_pretrained(out / "t1")  # the task prompt is the template's default
    assert SYSTEM_T1 in tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    files = json.loads((out / "export.json").read_text())["files"]
    assert "t1/model.safetensors" in files and len(files["t1/model.safetensors"]["sha256"]) == 64
    assert (out / "t1" / "README.md").read_text().count("from_pretrained") == 2


def test_hf_export_of_one_task_and_bad_requests(run_dir, tmp_path):
    out = tmp_path / "one"
    export_hf(run_dir, out, task="t1")
    assert (out / "config.json").is_file() and (out / "agentmill_task.json").is_file()
    with pytest.raises(ExportError, match="already exists"):
        export_hf(run_dir, out, task="t1")
    with pytest.raises(ExportError, match="'domain' is an evaluation set"):
        export_hf(run_dir, tmp_path / "x", task="domain")
    with pytest.raises(ExportError, match="'nope' is not a task of this run; tasks of .*: t1, t2, merged, intent"):
        export_hf(run_dir, tmp_path / "x", task="nope")
    with pytest.raises(ExportError, match="no manifest.json"):
        export_hf(tmp_path, tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_failed_export_leaves_nothing(run_dir, tmp_path, monkeypatch):
    import agentmill.export.hf as hf

    def broken(*args, **kwargs):
        raise ExportError("disk full")

    monkeypatch.setattr(hf, "write_manifest", broken)
    with pytest.raises(ExportError, match="disk full"):
        export_hf(run_dir, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_the_export_command(run_dir, tmp_path):
    import subprocess
    import sys

    def agentmill(*args):
        return subprocess.run([sys.executable, "-m", "agentmill.cli", "export", str(run_dir), *args],
                              capture_output=True, text=True)

    done = agentmill("--to", "hf", "--task", "t2", "--out", str(tmp_path / "t2"))
    assert done.returncode == 0, done.stderr
    assert "exported t2 to" in done.stdout and (tmp_path / "t2" / "model.safetensors").is_file()
    bad = agentmill("--to", "onnx", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "error: --to 'onnx': choose one of hf, gguf, ollama, vllm" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x").exists()


def test_an_embedding_classifier_is_not_exported_as_a_model(run_dir, tmp_path):
    import shutil

    from agentmill.export.common import RunInfo

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["tasks"]["intent"]["classifier"] = "classifiers/intent"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert RunInfo.read(copy).select(None) == ["t1", "t2", "merged"]
    with pytest.raises(ExportError, match=r"'intent' is a classifier on sentence embeddings \(classifiers/intent\)"):
        export_hf(copy, tmp_path / "out", task="intent")
