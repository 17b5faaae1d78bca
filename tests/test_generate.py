"""Generation, batch generation, scoring and RunModel on the tiny random model (real SmolLM2 vocab)."""

import json

import pytest
import torch

from agentmill.data.render import end_of_turn_id, render
from agentmill.errors import AgentmillError
from agentmill.model.generate import generate, generate_batch, generate_stream, score_continuations, score_many
from agentmill.model.load import load_tokenizer
from agentmill.model.run import RunModel
from serve_util import chatty_tiny, tiny_lora

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is the capital of France? Answer in one word please."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"}],
    [{"role": "user", "content": "Tell me a story"}, {"role": "assistant", "content": "Once upon a time."},
     {"role": "user", "content": "Go on, a longer one this time, with dragons and a castle."}],
    [{"role": "user", "content": "ok"}],
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def tiny_lm(tok):
    return chatty_tiny(tok)


class _ForceEot:
    """Forward hook on lm_head making the end-of-turn token win from the `after`-th generation step on
    (one lm_head call per generated token: the prefill computes the last position's logits only)."""

    def __init__(self, eot, after):
        self.eot, self.after = eot, after
        self.calls = 0

    def __call__(self, module, args, output):
        self.calls += 1
        if self.calls > self.after:
            output = output.clone()
            output[..., self.eot] = 1e4
        return output


# ---------------------------------------------------------------- generate / stream / batch


def test_generate_stream_equals_generate(tiny_lm, tok):
    for conv in CONVERSATIONS[:3]:
        whole = generate(tiny_lm, tok, conv, max_new_tokens=12)
        pieces = list(generate_stream(tiny_lm, tok, conv, max_new_tokens=12))
        assert "".join(pieces) == whole
        assert whole.strip()  # a random model does not stop at once


def test_generate_batch_equals_generate(tiny_lm, tok):
    singles = [generate(tiny_lm, tok, conv, max_new_tokens=10) for conv in CONVERSATIONS]
    assert len(set(singles)) >= 3 and all(s.strip() for s in singles)  # context-dependent answers
    assert generate_batch(tiny_lm, tok, CONVERSATIONS, max_new_tokens=10, batch_size=16) == singles
    assert generate_batch(tiny_lm, tok, CONVERSATIONS, max_new_tokens=10, batch_size=2) == singles
    assert tok.padding_side == "right"  # restored
    assert generate_batch(tiny_lm, tok, [], max_new_tokens=4) == []


def test_generation_stops_at_end_of_turn(tiny_lm, tok):
    eot = end_of_turn_id(tok)
    conv = CONVERSATIONS[1]
    free = generate(tiny_lm, tok, conv, max_new_tokens=8)
    hook = _ForceEot(eot, after=3)
    handle = tiny_lm.lm_head.register_forward_hook(hook)
    try:
        stopped = generate(tiny_lm, tok, conv, max_new_tokens=8)
        hook.calls = 0
        streamed = "".join(generate_stream(tiny_lm, tok, conv, max_new_tokens=8))
    finally:
        handle.remove()
    # three tokens generated, then the stop token: the text of exactly three free tokens
    three = generate(tiny_lm, tok, conv, max_new_tokens=3)
    assert stopped == three == streamed
    assert free.startswith(three) and free != three
    assert "<|im_end|>" not in stopped


def test_sampling_is_seeded(tiny_lm, tok):
    conv = CONVERSATIONS[1]
    a = generate(tiny_lm, tok, conv, max_new_tokens=10, temperature=1.0, top_p=0.9, seed=3)
    b = "".join(generate_stream(tiny_lm, tok, conv, max_new_tokens=10, temperature=1.0, top_p=0.9, seed=3))
    greedy = generate(tiny_lm, tok, conv, max_new_tokens=10)
    assert a == b
    assert a != greedy  # near-uniform random model: sampling differs from greedy


class _Boom(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def generate(self, **kwargs):
        kwargs["streamer"].put(kwargs["input_ids"].cpu())  # the prompt, as HF does
        raise RuntimeError("exploded in the generation thread")


def test_stream_propagates_thread_exceptions(tok):
    with pytest.raises(RuntimeError, match="exploded in the generation thread"):
        list(generate_stream(_Boom(), tok, CONVERSATIONS[0], max_new_tokens=4))


def test_stream_closed_early_stops_generation(tiny_lm, tok):
    stream = generate_stream(tiny_lm, tok, CONVERSATIONS[1], max_new_tokens=2000)
    first = next(stream)
    assert first
    stream.close()  # sets the cancel flag and joins the thread: returns quickly, no hang


def test_generate_with_peft_wrapper(tok):
    peft_model = tiny_lora(tok, 1, "t1")
    singles = [generate(peft_model, tok, c, max_new_tokens=8) for c in CONVERSATIONS[:3]]
    assert generate_batch(peft_model, tok, CONVERSATIONS[:3], max_new_tokens=8) == singles
    assert "".join(generate_stream(peft_model, tok, CONVERSATIONS[0], max_new_tokens=8)) == singles[0]


# ---------------------------------------------------------------- scoring


def _reference_scores(model, tok, messages, continuations):
    prompt = tok(render(tok, messages, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    eot = end_of_turn_id(tok)
    out = []
    for c in continuations:
        answer = tok(c, add_special_tokens=False)["input_ids"] + [eot]
        ids = torch.tensor([prompt + answer])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        out.append(sum(logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(answer)))
    return out


def test_score_continuations_equals_reference(tiny_lm, tok):
    messages = [{"role": "system", "content": "Classify the topic."},
                {"role": "user", "content": "The team won the cup final 3-1."}]
    labels = ["sport", "business", "politics", "tech", "entertainment and the arts"]
    got = score_continuations(tiny_lm, tok, messages, labels)
    ref = _reference_scores(tiny_lm, tok, messages, labels)
    assert len(got) == len(labels)
    assert got == pytest.approx(ref, abs=1e-4)
    assert all(s < 0 for s in got)
    # one continuation alone scores the same as inside the batch
    assert score_continuations(tiny_lm, tok, messages, labels[-1:])[0] == pytest.approx(ref[-1], abs=1e-4)
    assert score_continuations(tiny_lm, tok, messages, []) == []


def test_score_continuations_with_peft(tok):
    peft_model = tiny_lora(tok, 1, "t1")
    messages = [{"role": "user", "content": "Is this spam?"}]
    labels = ["yes", "no"]
    assert score_continuations(peft_model, tok, messages, labels) == pytest.approx(
        _reference_scores(peft_model, tok, messages, labels), abs=1e-4)


def test_merged_lora_same_logits_and_weights_restored(tok):
    from agentmill.eval.evaluate import merged_lora

    peft_model = tiny_lora(tok, 1, "t1")
    ids = torch.tensor([tok("The monthly payment is", add_special_tokens=False)["input_ids"]])
    weights = {k: v.clone() for k, v in peft_model.state_dict().items()}
    with torch.no_grad():
        unmerged = peft_model(input_ids=ids).logits
        with merged_lora(peft_model):
            assert all(m.merged for m in peft_model.modules() if hasattr(m, "merged_adapters"))
            merged = peft_model(input_ids=ids).logits
        peft_model.base_model.disable_adapter_layers()  # the bare backbone: nothing may be merged in
        bare = peft_model(input_ids=ids).logits
        with merged_lora(peft_model):
            assert (peft_model(input_ids=ids).logits - bare).abs().max() == 0
        peft_model.base_model.enable_adapter_layers()
    assert (merged - unmerged).abs().max() < 1e-4
    assert (unmerged - bare).abs().max() > 1e-3  # the adapter does change the output
    assert not any(m.merged for m in peft_model.modules() if hasattr(m, "merged_adapters"))
    assert max((weights[k] - v).abs().max().item() for k, v in peft_model.state_dict().items()) < 1e-6


# ---------------------------------------------------------------- RunModel


@pytest.fixture(scope="module")
def run_dir(tok, tmp_path_factory):
    root = tmp_path_factory.mktemp("run") / "myrun"
    base = chatty_tiny(tok)
    base.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    # adapter_name "default": PeftModel.save_pretrained puts any other name in a sub-folder of that name
    tiny_lora(tok, 1).save_pretrained(root / "adapters" / "t1")
    tiny_lora(tok, 2).save_pretrained(root / "adapters" / "t2")
    manifest = {"name": "myrun", "base_model": "tiny", "backbone": "model", "stages": [], "precision_requested": "fp32",
                "tasks": {"intent": {"stage": "finetune", "format": "classification", "adapter": None,
                                     "labels": ["a", "b"]},
                          "t1": {"stage": "crosstask", "format": "chat", "adapter": "adapters/t1"},
                          "t2": {"stage": "crosstask", "format": "chat", "adapter": "adapters/t2"}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _logits(run, text="Hello there, how are you?"):
    ids = torch.tensor([run.tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return run.model(input_ids=ids).logits


@pytest.mark.parametrize("native", [True, False])
def test_runmodel_loads_the_weights_in_the_precision_chosen_on_this_machine(run_dir, tok, tiny_lm, monkeypatch,
                                                                           tmp_path, native):
    from agentmill import hardware

    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path))
    monkeypatch.setattr(hardware, "_probe_memo", None)
    monkeypatch.setattr(hardware, "cpu_claims_native_bf16", lambda: native)
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, **kw: 1400.0 if dtype == torch.bfloat16 else 300.0)
    import shutil

    run_dir = shutil.copytree(run_dir, tmp_path / "run")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["precision_requested"] = "auto"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    run = RunModel.load(run_dir)
    want = torch.bfloat16 if native else torch.float32
    assert {p.dtype for n, p in run.model.named_parameters() if "lora_" not in n} == {want}
    run.use_task("t1")
    fast = _logits(run).float()
    exact = RunModel.load(run_dir, dtype=torch.float32)
    exact.use_task("t1")
    ref = _logits(exact)
    # bf16 weights change the logits by bf16 rounding only; fp32 is the saved model exactly
    assert (fast - ref).abs().max().item() < (0.1 if native else 1e-5)
    assert (fast.argmax(-1) == ref.argmax(-1)).float().mean().item() >= (0.8 if native else 1.0)


def test_runmodel_load_and_use_task(run_dir, tok, tiny_lm):
    run = RunModel.load(run_dir)
    assert run.tasks == ["intent", "t1", "t2"]
    assert run.task is None and run.label == "base"
    assert run.run_dir == run_dir
    base = _logits(run)
    plain = _logits(RunModel.from_parts(tiny_lm, tok))
    assert torch.allclose(base, plain, atol=1e-5)  # adapters disabled = the saved backbone

    run.use_task("t1")
    t1 = _logits(run)
    assert run.task == "t1" and run.label == "t1"
    assert not torch.allclose(t1, base, atol=1e-3)
    run.use_task("t2")
    t2 = _logits(run)
    assert not torch.allclose(t2, t1, atol=1e-3) and not torch.allclose(t2, base, atol=1e-3)
    run.use_task("intent")  # a task merged into the backbone: no adapter
    assert torch.allclose(_logits(run), base, atol=1e-6)
    run.use_task("t1")
    assert torch.allclose(_logits(run), t1, atol=1e-6)  # switching back is exact
    run.use_task(None)
    assert torch.allclose(_logits(run), base, atol=1e-6)
    assert not any(p.requires_grad for p in run.model.parameters())

    with pytest.raises(AgentmillError, match="unknown task 'nope'.*intent, t1, t2"):
        run.use_task("nope")
    assert run.task is None

    # generation through the loaded run follows the selected adapter
    run.use_task("t1")
    with_t1 = run.generate(CONVERSATIONS[0], max_new_tokens=6)
    run.use_task(None)
    without = run.generate(CONVERSATIONS[0], max_new_tokens=6)
    assert without == generate(tiny_lm, tok, CONVERSATIONS[0], max_new_tokens=6)
    assert with_t1 != without


def test_runmodel_load_errors(run_dir, tmp_path):
    with pytest.raises(AgentmillError, match="does not exist"):
        RunModel.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AgentmillError, match="no manifest.json"):
        RunModel.load(tmp_path / "empty")
    # an interrupted run: only the partial folder exists
    (tmp_path / ".half.partial").mkdir()
    with pytest.raises(AgentmillError, match="unfinished.*--resume"):
        RunModel.load(tmp_path / "half")
    with pytest.raises(AgentmillError, match="unfinished"):
        RunModel.load(tmp_path / ".half.partial")
    # a manifest whose adapter folder is gone
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model").symlink_to(run_dir / "model")
    (broken / "manifest.json").write_text(json.dumps(
        {"name": "b", "backbone": "model", "tasks": {"x": {"format": "chat", "adapter": "adapters/x"}}}))
    with pytest.raises(AgentmillError, match="adapter of task 'x'"):
        RunModel.load(broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(AgentmillError, match="cannot read the manifest"):
        RunModel.load(broken)


def test_runmodel_from_parts(tok):
    peft_model = tiny_lora(tok, 1, "t1")
    run = RunModel.from_parts(peft_model, tok)
    assert run.tasks == ["t1"] and run.task is None
    base = _logits(run)
    run.use_task("t1")
    assert not torch.allclose(_logits(run), base, atol=1e-3)


def test_generate_batch_runs_a_shared_prefix_once_with_the_same_answers(tiny_lm, tok):
    """A task's system prompt and tool list are shared by every row: run once, same greedy answers."""
    from agentmill.model import generate as gen

    system = {"role": "system", "content": "You are the bank's assistant. " * 8 + "Use the tools for numbers."}
    convs = [[system, *c] for c in CONVERSATIONS]
    singles = [generate(tiny_lm, tok, conv, max_new_tokens=10) for conv in convs]
    calls = []
    real = gen._shared_prefix_batch
    def spy(*args):
        ids, mask, cache = real(*args)
        calls.append((mask, cache.get_seq_length() if cache is not None else 0))
        return ids, mask, cache

    gen._shared_prefix_batch = spy
    try:
        assert generate_batch(tiny_lm, tok, convs, max_new_tokens=10, batch_size=16) == singles
    finally:
        gen._shared_prefix_batch = real
    mask, shared = calls[0]
    assert shared >= 40  # the system prompt ran once
    assert (mask[:, :shared] == 1).all() and (mask.sum(1) == torch.tensor(
        sorted(len(gen._prompt_ids(tok, c)) for c in convs))).all()


def test_score_many_equals_one_conversation_at_a_time(tiny_lm, tok):
    conversations = [[{"role": "user", "content": text}] for text in
                     ("The team won the cup final 3-1.", "Shares fell 4% after the earnings call.", "Hi",
                      "A long message about the new phone, its camera, its battery and its price.")]
    labels = ["sport", "business", "tech", "entertainment and the arts"]
    # a small row budget forces several rows
    got = score_many(tiny_lm, tok, conversations, labels, row_tokens=120)
    for conversation, scores in zip(conversations, got):
        assert scores == pytest.approx(_reference_scores(tiny_lm, tok, conversation, labels), abs=1e-4)
    assert score_many(tiny_lm, tok, conversations, []) == [[], [], [], []]
