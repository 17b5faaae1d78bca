"""Packed attention (model/attention.py): same logits and gradients as each example run alone."""

import pytest
import torch

from agentmill.data.pack import collate
from agentmill.data.render import Example
from agentmill.model import attention
from agentmill.model.attention import packed_attention
from agentmill.train.loop import row_loss


def _examples(lengths, seed=0, vocab=49_000):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        out.append(Example(input_ids=ids, labels=[-100] * (n // 3) + ids[n // 3:]))
    return out


def _alone(model, examples):
    with torch.no_grad():
        return [model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0] for e in examples]


@pytest.mark.parametrize("eager_max", [512, 4])  # 4: the longer examples take the flash-kernel branch
def test_packed_logits_equal_logits_alone(tiny, monkeypatch, eager_max):
    monkeypatch.setattr(attention, "EAGER_MAX_LEN", eager_max)
    examples = _examples([7, 1, 12, 3, 9])
    batch = collate(examples)
    with torch.no_grad(), packed_attention(tiny):
        packed = tiny(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
    start = 0
    for e, alone in zip(examples, _alone(tiny, examples)):
        got = packed[start:start + len(e.input_ids)]
        start += len(e.input_ids)
        assert (got - alone).abs().max().item() < 1e-4


def test_contiguous_positions_are_one_example(tiny):
    """Negative control: without position restarts the row is one causal sequence, as with SDPA."""
    examples = _examples([6, 8])
    ids = torch.tensor([examples[0].input_ids + examples[1].input_ids])
    with torch.no_grad():
        ref = tiny(input_ids=ids, use_cache=False).logits[0]
        with packed_attention(tiny):
            got = tiny(input_ids=ids, position_ids=torch.arange(14)[None], use_cache=False).logits[0]
    assert (got - ref).abs().max().item() < 1e-4
    assert (got[6:] - _alone(tiny, examples)[1]).abs().max().item() > 1e-2


def test_row_loss_gradients_equal_sdpa_gradients(tiny, monkeypatch):
    """row_loss uses packed attention on CPU; its loss and gradients match SDPA's."""
    calls = []
    real = attention._segments
    monkeypatch.setattr(attention, "_segments", lambda pos: calls.append(1) or real(pos))
    examples = _examples([10, 5, 17], seed=3)
    batch = collate(examples)
    params = [p for p in tiny.parameters() if p.requires_grad]

    tiny.zero_grad()
    loss, n, seen = row_loss(tiny, batch)
    loss.backward()
    got = [p.grad.clone() for p in params]
    assert len(calls) == tiny.config.num_hidden_layers  # the packed path really ran

    tiny.zero_grad()
    keep = (batch["targets"][0] != -100).nonzero().squeeze(-1)
    logits = tiny(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False,
                  logits_to_keep=keep).logits[0]
    ref = torch.nn.functional.cross_entropy(logits, batch["targets"][0][keep], reduction="sum")
    ref.backward()
    assert (n, seen) == (batch["num_targets"], 32)
    assert abs(loss.item() - ref.item()) < 1e-3
    for g, p in zip(got, params):
        assert torch.allclose(g, p.grad, atol=1e-5, rtol=1e-4)
    tiny.zero_grad()


def test_attention_implementation_is_restored_and_generation_unaffected(tiny):
    before = tiny.config._attn_implementation
    with packed_attention(tiny):
        assert tiny.config._attn_implementation == attention.NAME
    assert tiny.config._attn_implementation == before
    with pytest.raises(RuntimeError, match="no KV cache"):
        with torch.no_grad(), packed_attention(tiny):
            tiny(input_ids=torch.tensor([[5, 6, 7], [8, 9, 10]]), use_cache=False)


def _shared(prefix_len, tails, seed=5, vocab=49_000):
    g = torch.Generator().manual_seed(seed)
    prefix = torch.randint(3, vocab, (prefix_len,), generator=g).tolist()
    out = []
    for n in tails:
        tail = torch.randint(3, vocab, (n,), generator=g).tolist()
        out.append(Example(input_ids=prefix + tail, labels=[-100] * (prefix_len + 1) + tail[1:]))
    return out


@pytest.mark.parametrize("eager_max", [512, 4])
def test_branches_of_a_shared_prefix_have_their_logits_alone(tiny, monkeypatch, eager_max):
    """Root + branches (positions restarting at the prefix length) + an unrelated example."""
    monkeypatch.setattr(attention, "EAGER_MAX_LEN", eager_max)
    examples = _shared(9, [4, 6, 3]) + _examples([5], seed=9)
    drops = [0, 9, 9, 0]
    batch = collate(examples, drops=drops)
    with torch.no_grad(), packed_attention(tiny):
        packed = tiny(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
    start = 0
    for e, drop, alone in zip(examples, drops, _alone(tiny, examples)):
        n = len(e.input_ids) - drop
        assert (packed[start:start + n] - alone[drop:]).abs().max().item() < 1e-4
        start += n


def test_shared_prefix_row_loss_and_gradients_equal_the_examples_alone(tiny):
    examples = _shared(12, [5, 8, 6], seed=7)
    params = [p for p in tiny.parameters() if p.requires_grad]
    tiny.zero_grad()
    loss, n, seen = row_loss(tiny, collate(examples, drops=[0, 12, 12]))
    loss.backward()
    got = [p.grad.clone() for p in params]
    assert seen == 12 + 5 + 8 + 6

    tiny.zero_grad()
    ref, ref_n = 0.0, 0
    for e in examples:  # each example alone, unpacked
        out_loss, count, _ = row_loss(tiny, collate([e]))
        out_loss.backward()
        ref += out_loss.item()
        ref_n += count
    assert n == ref_n and abs(loss.item() - ref) < 1e-3
    for g, p in zip(got, params):
        assert torch.allclose(g, p.grad, atol=1e-5, rtol=1e-4)
    tiny.zero_grad()


def test_a_branch_without_a_root_is_refused(tiny):
    with pytest.raises(RuntimeError, match="no root"):
        with torch.no_grad(), packed_attention(tiny):
            tiny(input_ids=torch.tensor([[5, 6, 7]]), position_ids=torch.tensor([[4, 5, 6]]), use_cache=False)
