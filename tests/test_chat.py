"""Terminal chat: history, commands, task switching, scripted chat — on the tiny model."""

import copy
import io

import pytest
import torch
from rich.console import Console

import agentmill.agent.agent as agent_mod
from agentmill.data.render import render
from agentmill.errors import AgentmillError
from agentmill.model.generate import generate
from agentmill.model.load import load_tokenizer, tiny_model
from agentmill.model.run import RunModel
from agentmill.ui.chat import chat_loop, scripted_chat


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def tiny_lm(tok):
    """Tiny model + a LoRA adapter 't1' (random, so it changes the answers)."""
    from peft import LoraConfig, get_peft_model

    base = tiny_model(tok)
    gen = torch.Generator().manual_seed(1)
    base.config.tie_word_embeddings = False  # untied: greedy answers depend on the context
    base.lm_head.weight = torch.nn.Parameter(torch.randn(base.lm_head.weight.shape, generator=gen) * 0.02)
    torch.manual_seed(5)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(base, config, adapter_name="t1").eval()


@pytest.fixture
def run(tiny_lm, tok):
    manifest = {"name": "chat-test", "tasks": {"intent": {"format": "classification", "adapter": None},
                                               "t1": {"format": "chat", "adapter": "adapters/t1"}}}
    return RunModel.from_parts(tiny_lm, tok, manifest)


def _console():
    return Console(file=io.StringIO(), record=True, width=200, color_system=None)


def _script(lines):
    """An input function that plays `lines`, then EOF; records how many were consumed."""
    it = iter(lines)
    consumed = []

    def input_fn(prompt=""):
        try:
            line = next(it)
        except StopIteration:
            raise EOFError from None
        consumed.append(line)
        return line

    input_fn.consumed = consumed
    return input_fn


@pytest.fixture
def captured(monkeypatch):
    """Replace the chat's generator with a fake that records (task, messages) and answers 'answer N'."""
    calls = []

    def fake_stream(model, tokenizer, messages, max_new_tokens=256, **kw):
        calls.append(copy.deepcopy(messages))
        n = len(calls)
        yield "answer "
        yield str(n)

    monkeypatch.setattr(agent_mod, "generate_stream", fake_stream)
    return calls


def test_chat_keeps_history_and_reset_clears_it(run, captured):
    console = _console()
    history = chat_loop(run, console=console, input_fn=_script(
        ["first question about llamas", "second", "third", "/reset", "fourth"]))
    assert len(captured) == 4
    turn3 = captured[2]
    assert [m["role"] for m in turn3] == ["user", "assistant", "user", "assistant", "user"]
    assert turn3[0]["content"] == "first question about llamas" and turn3[1]["content"] == "answer 1"
    assert turn3[-1]["content"] == "third"
    assert captured[3] == [{"role": "user", "content": "fourth"}]  # /reset cleared it
    assert history == [{"role": "user", "content": "fourth"}, {"role": "assistant", "content": "answer 4"}]
    out = console.export_text()
    assert "[base] answer 1" in out and "history cleared" in out and "bye" in out


def test_chat_task_switch_unknown_task_and_quit(run, captured):
    console = _console()
    script = _script(["hello", "/task t1", "again", "/task nope", "still here", "/task", "/frobnicate",
                      "/task base", "last", "/quit", "never read"])
    chat_loop(run, console=console, input_fn=script)
    out = console.export_text()
    assert "[base] answer 1" in out
    assert "[t1] answer 2" in out
    assert "unknown task 'nope'" in out and "intent, t1" in out
    assert "[t1] answer 3" in out  # the unknown task kept the current one and the chat went on
    assert "* t1" in out and "intent" in out  # /task alone lists, current marked
    assert "unknown command /frobnicate" in out and "/reset" in out  # help printed
    assert "[base] answer 4" in out
    assert script.consumed[-1] == "/quit"  # /quit ended the loop
    assert run.task is None
    assert len(captured[3]) == 7  # history kept across task switches (3 turns + new question)


def test_chat_start_task_and_eof_and_ctrl_c(run, captured):
    console = _console()
    chat_loop(run, task="t1", console=console, input_fn=_script(["hi"]))  # EOF after one line
    assert "[t1] answer 1" in console.export_text() and run.task == "t1"

    def interrupt(prompt=""):
        raise KeyboardInterrupt

    console = _console()
    assert chat_loop(run, console=console, input_fn=interrupt) == []
    assert "bye" in console.export_text()
    with pytest.raises(AgentmillError, match="unknown task"):
        chat_loop(run, task="missing", console=_console(), input_fn=interrupt)


def test_chat_streams_real_generation_with_adapter(run, tok, tiny_lm, monkeypatch):
    """No fake: real streaming through the PEFT model; the prompt of turn 3 contains turn 1."""
    real = agent_mod.generate_stream
    prompts = []

    def spy(model, tokenizer, messages, **kw):
        prompts.append(render(tokenizer, messages, add_generation_prompt=True))
        yield from real(model, tokenizer, messages, **kw)

    monkeypatch.setattr(agent_mod, "generate_stream", spy)
    pairs = scripted_chat(run, ["/task t1", "tell me about llamas", "and alpacas?", "and vicunas?"],
                          console=_console())
    assert [u for u, _ in pairs] == ["tell me about llamas", "and alpacas?", "and vicunas?"]
    assert "tell me about llamas" in prompts[2] and pairs[0][1] in prompts[2] and pairs[1][1] in prompts[2]
    assert len(prompts) == 3  # one generation per message: no tools, no retries
    # the streamed answers are exactly what generate gives with the adapter on
    run.use_task("t1")
    first = generate(tiny_lm, tok, [{"role": "user", "content": "tell me about llamas"}], max_new_tokens=256)
    assert pairs[0][1] == first.strip() and first.strip()
    run.use_task(None)
    base_first = generate(tiny_lm, tok, [{"role": "user", "content": "tell me about llamas"}], max_new_tokens=256)
    assert base_first != first  # the adapter matters


def test_scripted_chat_pairs_and_quit(run, captured):
    console = _console()
    pairs = scripted_chat(run, ["  ", "one", "/reset", "two", "/quit", "three"], task="intent", console=console)
    assert pairs == [("one", "answer 1"), ("two", "answer 2")]
    assert captured[1] == [{"role": "user", "content": "two"}]
    out = console.export_text()
    assert "you> one" in out and "[intent] answer 1" in out and "three" not in out


def test_checked_chat_marks_each_turn(run, captured):
    from agentmill.eval.script import ScriptTurn
    from agentmill.ui.chat import checked_chat

    console = _console()
    turns = [ScriptTurn(user="one", expect={"answer_has": ["answer 1"], "tool": "none"}),
             ScriptTurn(user="two", expect={"answer_has": ["answer 9"]})]
    played = checked_chat(run, turns, console=console)
    assert [t["ok"] for t in played] == [True, False]
    assert [c["what"] for c in played[1]["checks"] if not c["ok"]] == ["answer"]
    assert captured[1][-1] == {"role": "user", "content": "two"} and len(captured[1]) == 3  # one conversation
    out = console.export_text()
    assert "✓" in out and "✗" in out and "answer has 'answer 9'" in out


def test_evaluation_sets_are_not_chat_targets_and_classifiers_answer_labels(tiny_lm, tok, captured):
    manifest = {"name": "chat-test", "tasks": {
        "t1": {"format": "chat", "adapter": "adapters/t1"},
        "intent": {"format": "classification", "adapter": None, "labels": ["greeting", "question"]},
        "domain": {"format": "text", "adapter": None, "eval_only": True, "stage": "pretrain"}}}
    run = RunModel.from_parts(tiny_lm, tok, manifest)
    assert run.chat_tasks() == ["t1", "intent"]
    console = _console()
    pairs = scripted_chat(run, ["/task", "/task domain", "/task intent", "good morning"], console=console)
    out = console.export_text()
    assert "'domain' is an evaluation set of the run" in out and " domain  (" not in out
    assert "intent  (classification, backbone, answers with its label)" in out
    assert pairs[0][1] in ("greeting", "question") and not captured  # scored, nothing generated
    assert f"[intent] {pairs[0][1]}" in out
    with pytest.raises(AgentmillError, match="evaluation set"):
        chat_loop(run, task="domain", console=_console(), input_fn=_script([]))


def test_images_and_recordings_in_the_terminal(run, captured, tmp_path, monkeypatch):
    from media_util import invoice, speak

    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path / "home"))
    invoice().save(tmp_path / "invoice.png")
    (tmp_path / "question.wav").write_bytes(speak("Can I pay this invoice from account 4821?"))
    console = _console()
    chat_loop(run, task="t1", console=console, input_fn=_script([
        f"/image {tmp_path / 'invoice.png'} What is the total due?",
        f"/audio {tmp_path / 'question.wav'}", "and this?",
        f"/image {tmp_path / 'question.wav'}", f"/image {tmp_path / 'missing.png'}", "/image"]))
    first, second = captured[0][-1]["content"], captured[1][-1]["content"]
    assert first.startswith("What is the total due?\n[image invoice.png, OCR] ACME SUPPLIES LTD\n")
    assert "Total due: $1,234.56" in first
    assert second == "and this?\n[audio question.wav, transcript] Can I pay this invoice from account 4821?"
    out = console.export_text()
    assert "question.wav is a recording: use /audio" in out and "missing.png: cannot read the file" in out
    assert "usage: /image FILE [question]" in out and len(captured) == 2
    kept = [p for p in (tmp_path / "home" / "media").rglob("*") if p.is_file()]
    assert len(kept) == 2  # both originals, content-addressed


def test_one_shot_chat_with_an_image(run, captured, tmp_path, monkeypatch):
    from media_util import invoice

    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path / "home"))
    invoice().save(tmp_path / "invoice.jpg")
    history = chat_loop(run, task="t1", console=_console(), attach=[str(tmp_path / "invoice.jpg")],
                        message="What is due?", input_fn=lambda prompt: pytest.fail("one shot reads no input"))
    assert history[0]["content"].startswith("What is due?\n[image invoice.jpg, OCR] ACME SUPPLIES LTD")
    assert history[-1] == {"role": "assistant", "content": "answer 1"}
    with pytest.raises(AgentmillError, match="cannot be read"):
        chat_loop(run, task="t1", console=_console(), attach=[str(tmp_path / "nope.png")], message="hi")
