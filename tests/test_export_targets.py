"""export --to gguf / ollama / vllm on a tiny run: llama.cpp's converter writes GGUF files whose
weights are the merged task's and whose template is the tool-aware one; the Ollama Modelfile
prints what agentmill renders; vLLM gets checked adapters and a serve.sh that names them."""

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from agentmill.data.render import render
from agentmill.export.common import ExportError, RunInfo
from agentmill.export.gguf import export_gguf
from agentmill.export.hf import merged_model
from agentmill.export.ollama import export_ollama
from agentmill.export.vllm import export_vllm
from serve_util import SYSTEM_T1, build_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer):
    return build_run(tmp_path_factory.mktemp("targets") / "run", tokenizer)


def gguf_reader(path):
    from gguf import GGUFReader

    return GGUFReader(path)


def field_text(reader, key):
    field = reader.fields[key]
    return bytes(field.parts[field.data[0]]).decode()


def test_gguf_holds_the_merged_weights_and_the_tool_aware_template(run_dir, tmp_path, tokenizer):
    out = tmp_path / "gguf"
    manifest = export_gguf(run_dir, out, task="t1", outtype="f16")
    assert manifest["tasks"] == ["t1"] and (out / "t1-f16.gguf").is_file() and (out / "README.md").is_file()
    reader = gguf_reader(out / "t1-f16.gguf")
    template = field_text(reader, "tokenizer.chat_template")
    assert "<tool_call>" in template and SYSTEM_T1 in template
    assert field_text(reader, "general.architecture") == "llama"
    merged = merged_model(RunInfo.read(run_dir), "t1").state_dict()
    tensors = {t.name: t for t in reader.tensors}
    q = tensors["blk.0.attn_q.weight"]  # llama.cpp permutes q/k for its RoPE layout: compare v and o
    assert q.data.shape[-1] == merged["model.layers.0.self_attn.q_proj.weight"].shape[1]
    for name, ours in (("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight"),
                       ("blk.1.attn_output.weight", "model.layers.1.self_attn.o_proj.weight")):
        theirs = torch.from_numpy(np.asarray(tensors[name].data, dtype=np.float32)).reshape(merged[ours].shape)
        torch.testing.assert_close(theirs, merged[ours].float(), atol=2e-3, rtol=1e-2)  # f16 rounding
    card = json.loads((out / "t1.json").read_text())
    assert card["system"] == SYSTEM_T1 and card["gguf"] == "t1-f16.gguf"


def test_gguf_bad_type_and_missing_quantizer(run_dir, tmp_path, monkeypatch):
    import builtins

    with pytest.raises(ExportError, match="--type 'q3'"):
        export_gguf(run_dir, tmp_path / "a", outtype="q3")
    real_import = builtins.__import__

    def no_llama_cpp(name, *args, **kwargs):
        if name == "llama_cpp":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_llama_cpp)
    with pytest.raises(ExportError, match="needs llama.cpp's quantizer"):
        export_gguf(run_dir, tmp_path / "b", task="t1", outtype="q4_k_m")
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".*"))


def test_ollama_modelfile(run_dir, tmp_path, tokenizer):
    out = tmp_path / "ollama"
    export_ollama(run_dir, out, task="t2", outtype="f16")
    text = (out / "t2" / "Modelfile").read_text()
    assert text.startswith("FROM ./t2-f16.gguf\n") and (out / "t2" / "t2-f16.gguf").is_file()
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0" in text
    system = text.split('SYSTEM """', 1)[1].split('"""', 1)[0]
    tools = json.loads((out / "t2" / "agentmill_task.json").read_text())["tools"]
    rendered = render(tokenizer, [{"role": "user", "content": "hi"}], tools=tools)
    assert rendered.startswith(f"<|im_start|>system\n{system}<|im_end|>\n")  # the system message as trained
    assert "calculator(" in system
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    for piece in ("<|im_start|>tool\n<tool_response>\n", "</tool_response><|im_end|>\n", "<tool_call>\n{\"name\": ",
                  "<|im_start|>assistant\n", ".ToolCalls", ".Tools"):
        assert piece in template
    assert "ollama create t2 -f t2/Modelfile" in (out / "README.md").read_text()


def test_vllm_export_and_its_serve_script(run_dir, tmp_path):
    out = tmp_path / "vllm"
    manifest = export_vllm(run_dir, out)
    assert manifest["max_lora_rank"] == 8  # the adapters' rank 4, rounded up to a rank vLLM takes
    for task in ("t1", "t2"):
        assert (out / "adapters" / task / "adapter_model.safetensors").read_bytes() == \
            (run_dir / "adapters" / task / "adapter_model.safetensors").read_bytes()
    tasks = json.loads((out / "tasks.json").read_text())
    assert tasks["t1"]["system"] == SYSTEM_T1 and tasks["merged"]["served_as"] == "base"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "vllm"  # records the command line serve.sh runs
    fake.write_text('#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n')
    fake.chmod(0o755)
    done = subprocess.run([str(out / "serve.sh"), "--port", "8011"], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    argv = json.loads(done.stdout)
    assert argv[:2] == ["serve", str(out / "model")] and argv[-2:] == ["--port", "8011"]
    names = argv[argv.index("--served-model-name") + 1: argv.index("--enable-lora")]
    assert names == ["base", "merged", "intent"]
    modules = [json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "--lora-modules"]
    assert [m["name"] for m in modules] == ["t1", "t2"]
    assert all((out / "adapters" / m["name"]).samefile(m["path"]) and m["base_model_name"] == "base" for m in modules)
    assert argv[argv.index("--tool-call-parser") + 1] == "hermes" and "--enable-auto-tool-choice" in argv
    assert open(argv[argv.index("--chat-template") + 1]).read() == (out / "chat_template.jinja").read_text()


def _bad_adapter(run_dir, tmp_path, tokenizer, edit):
    import shutil

    bad = tmp_path / "badrun"
    shutil.copytree(run_dir, bad)
    edit(bad / "adapters" / "t1")
    return bad


@pytest.mark.parametrize("case,edit,message", [
    ("dora", lambda a: _config(a, use_dora=True), "does not support DoRA"),
    ("modules_to_save", lambda a: _config(a, modules_to_save=["lm_head"]), "modules_to_save"),
    ("bias", lambda a: _config(a, bias="lora_only"), "trains biases"),
    ("renamed", lambda a: _rename_keys(a, "self_attn", "attention"), "which the backbone does not have"),
])
def test_vllm_refuses_adapters_it_would_refuse_or_ignore(run_dir, tmp_path, tokenizer, case, edit, message):
    bad = _bad_adapter(run_dir, tmp_path, tokenizer, edit)
    with pytest.raises(ExportError, match=message):
        export_vllm(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_vllm_refuses_an_adapter_outside_the_projections(run_dir, tmp_path, tokenizer):
    from peft import LoraConfig, get_peft_model

    from serve_util import chatty_tiny

    def embed(adapter):
        model = get_peft_model(chatty_tiny(tokenizer), LoraConfig(r=4, target_modules=["q_proj", "embed_tokens"]))
        model.save_pretrained(adapter)

    bad = _bad_adapter(run_dir, tmp_path, tokenizer, embed)
    with pytest.raises(ExportError, match="outside the attention and MLP projections"):
        export_vllm(bad, tmp_path / "out")


def _config(adapter, **changes):
    path = adapter / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _rename_keys(adapter, old, new):
    from safetensors.torch import load_file, save_file

    path = adapter / "adapter_model.safetensors"
    save_file({k.replace(old, new): v for k, v in load_file(path).items()}, path)


def test_a_failed_conversion_is_reported_and_leaves_nothing(run_dir, tmp_path, monkeypatch):
    fake = tmp_path / "llama.cpp"
    fake.mkdir()
    (fake / "convert_hf_to_gguf.py").write_text("import sys\nprint('Model MysteryForCausalLM is not supported', "
                                                 "file=sys.stderr)\nsys.exit(1)\n")
    monkeypatch.setenv("AGENTMILL_LLAMA_CPP", str(fake))
    with pytest.raises(ExportError, match="convert_hf_to_gguf.py failed .*\nModel MysteryForCausalLM is not supported"):
        export_gguf(run_dir, tmp_path / "out", task="t1")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    monkeypatch.setenv("AGENTMILL_LLAMA_CPP", str(tmp_path / "nowhere"))
    with pytest.raises(ExportError, match="no convert_hf_to_gguf.py there"):
        export_gguf(run_dir, tmp_path / "out", task="t1")
