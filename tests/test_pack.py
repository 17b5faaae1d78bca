"""Packing: bin packing, collation, and the invariant that packing never leaks between examples."""

import torch
import torch.nn.functional as F
import pytest

from agentmill.data.pack import SharedPrefixes, collate, pack, row_drops, row_order, shared_prefixes
from agentmill.data.render import Example


def _examples(lengths, seed=0, vocab=49_000):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        out.append(Example(input_ids=ids, labels=[-100] * (n // 2) + ids[n // 2:]))
    return out


# --- pack --------------------------------------------------------------------------------------

def test_best_fit_decreasing_small_case():
    assert pack([5, 4, 3, 3, 1], 8) == [[0, 2], [1, 3, 4]]


@pytest.mark.parametrize("seed", range(5))
def test_bins_respect_budget_and_use_every_index_once(seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 100, (200,), generator=g).tolist()
    bins = pack(lengths, 128)
    assert sorted(i for b in bins for i in b) == list(range(200))
    assert all(sum(lengths[i] for i in b) <= 128 for b in bins)
    # any-fit property: an item opens a bin only when it fits nowhere, so at most one bin is half empty
    assert sum(1 for b in bins if sum(lengths[i] for i in b) <= 64) <= 1
    assert pack(lengths, 128) == bins  # deterministic


def test_seeded_packing_mixes_lengths_and_keeps_the_fit_guarantees():
    # two "classes" of distinct lengths: decreasing order puts each in its own rows, a seed mixes them
    lengths = [50] * 40 + [10] * 40
    plain = pack(lengths, 100)
    assert all(len({lengths[i] for i in b}) == 1 for b in plain)
    mixed = pack(lengths, 100, seed=3)
    assert sum(len({lengths[i] for i in b}) == 2 for b in mixed) >= 6  # decreasing order: none
    assert sorted(i for b in mixed for i in b) == list(range(80))
    assert all(sum(lengths[i] for i in b) <= 100 for b in mixed)
    assert sum(1 for b in mixed if sum(lengths[i] for i in b) < 50) <= 1
    assert pack(lengths, 100, seed=3) == mixed and pack(lengths, 100, seed=4) != mixed


def test_example_longer_than_budget_is_an_error():
    with pytest.raises(ValueError, match="example 1 has 9 tokens, more than the packing budget 8"):
        pack([3, 9], 8)


# --- collate -----------------------------------------------------------------------------------

def test_collate_positions_targets_and_count():
    a = Example(input_ids=[10, 11, 12], labels=[-100, 11, 12])
    b = Example(input_ids=[20, 21], labels=[20, 21])
    c = Example(input_ids=[30, 31, 32, 33], labels=[-100, -100, 32, -100])
    batch = collate([a, b, c])
    assert batch["input_ids"].tolist() == [[10, 11, 12, 20, 21, 30, 31, 32, 33]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    # targets[t] = labels[t+1] inside the same example; the last token of each example has none
    assert batch["targets"].tolist() == [[11, 12, -100, 21, -100, -100, 32, -100, -100]]
    assert batch["num_targets"] == 4
    assert "attention_mask" not in batch
    assert batch["input_ids"].dtype == batch["position_ids"].dtype == batch["targets"].dtype == torch.long


def test_targets_never_cross_boundaries():
    examples = [Example(input_ids=[7] * n, labels=[7] * n) for n in (4, 1, 5)]
    targets = collate(examples)["targets"][0].tolist()
    ends = [3, 4, 9]  # last token of each example
    assert [targets[e] for e in ends] == [-100, -100, -100]
    assert collate(examples)["num_targets"] == 3 + 0 + 4


# --- packing never leaks -----------------------------------------------------------------------

def _logits_alone(model, examples):
    with torch.no_grad():
        return [model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0] for e in examples]


def _split(logits, examples):
    out, start = [], 0
    for e in examples:
        out.append(logits[start:start + len(e.input_ids)])
        start += len(e.input_ids)
    return out


def test_packed_logits_equal_logits_alone(tiny):
    examples = _examples([7, 12, 9])
    batch = collate(examples)
    with torch.no_grad():
        packed = tiny(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
    for alone, got in zip(_logits_alone(tiny, examples), _split(packed, examples)):
        assert (got - alone).abs().max().item() < 1e-4


def test_negative_controls_leak(tiny):
    """Without restarting positions, or with a KV cache / attention mask, later examples see earlier ones."""
    examples = _examples([7, 12, 9])
    batch = collate(examples)
    alone = _logits_alone(tiny, examples)
    with torch.no_grad():
        runs = {
            "contiguous positions": tiny(input_ids=batch["input_ids"], use_cache=False).logits[0],
            # transformers 5: packed sequences are detected only without cache and without attention mask
            "use_cache default": tiny(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0],
            "attention mask": tiny(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                                   attention_mask=torch.ones_like(batch["input_ids"]), use_cache=False).logits[0],
        }
    for name, logits in runs.items():
        diffs = [(got - a).abs().max().item() for a, got in zip(alone, _split(logits, examples))]
        assert diffs[0] < 1e-4, name  # the first example has nothing before it
        assert min(diffs[1:]) > 1e-2, name


def test_packed_loss_equals_sum_of_losses_alone(tiny):
    examples = _examples([5, 11, 8], seed=1)
    batch = collate(examples)
    with torch.no_grad():
        logits = tiny(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        packed = F.cross_entropy(logits.view(-1, logits.shape[-1]), batch["targets"].view(-1),
                                 ignore_index=-100, reduction="sum")
        ref = sum(F.cross_entropy(a[:-1], torch.tensor(e.labels[1:]), ignore_index=-100, reduction="sum")
                  for a, e in zip(_logits_alone(tiny, examples), examples))
    assert batch["num_targets"] == sum(sum(1 for x in e.labels[1:] if x != -100) for e in examples)
    assert abs(packed.item() - ref.item()) < 1e-3


# --- shared prefixes ---------------------------------------------------------------------------

def _with_prefix(prefix, tails, seed=0):
    """Examples = one untrained prefix + a tail that is half untrained, half trained."""
    out = []
    for tail in _examples(tails, seed=seed):
        n = len(tail.input_ids)
        out.append(Example(input_ids=prefix + tail.input_ids,
                           labels=[-100] * (len(prefix) + n // 2) + tail.input_ids[n // 2:]))
    return out


def test_shared_prefixes_group_examples_by_their_common_untrained_start():
    prefix_a, prefix_b = list(range(100, 140)), list(range(200, 240))
    examples = _with_prefix(prefix_a, [6, 8, 5]) + _with_prefix(prefix_b, [7, 9], seed=1) + _examples([50], seed=2)
    # a group member whose labels start inside the common prefix limits what the group may drop
    examples.append(Example(input_ids=prefix_a + [1, 2], labels=[-100] * 35 + prefix_a[35:] + [1, 2]))
    got = shared_prefixes(examples, min_tokens=32)
    a, b = got.group[0], got.group[3]
    assert got.group[:6] == [a, a, a, b, b, -1] and a != b and a >= 0 and b >= 0
    assert got.group[6] == a and got.length[a] == 34  # labels[1..P] untrained: P <= 35 - 1
    assert got.length[b] >= 40
    assert shared_prefixes(examples, min_tokens=64).group == [-1] * 7


def test_pack_puts_branches_with_their_root_and_saves_the_prefix():
    prefix = list(range(100, 160))  # 60 tokens
    examples = _with_prefix(prefix, [20] * 9)  # 80 tokens each
    prefixes = shared_prefixes(examples)
    lengths = [len(e.input_ids) for e in examples]
    rows = pack(lengths, 200, seed=0, prefixes=prefixes)
    # 80 + 20 * k <= 200: a root and 6 branches per row, where whole examples would fit 2
    assert sorted(len(r) for r in rows) == [2, 7]
    assert sorted(i for r in rows for i in r) == list(range(9))
    for row in rows:
        drops = row_drops(row, prefixes)
        assert drops[0] == 0 and set(drops[1:]) <= {prefixes.length[0]}
        assert sum(lengths[i] - d for i, d in zip(row, drops)) <= 200


def test_row_order_keeps_each_group_together_root_first():
    prefixes = SharedPrefixes(group=[0, 1, 0, -1, 1, 0], length=[40, 50])
    assert row_order([3, 0, 1, 2, 5, 4], prefixes) == [3, 0, 2, 5, 1, 4]
    assert row_drops([3, 0, 2, 5, 1, 4], prefixes) == [0, 0, 40, 40, 0, 50]


def test_collate_branches_start_at_the_prefix_position_and_keep_every_target():
    root = Example(input_ids=[1, 2, 3, 10, 11], labels=[-100, -100, -100, -100, 11])
    branch = Example(input_ids=[1, 2, 3, 20, 21, 22], labels=[-100, -100, -100, -100, 21, 22])
    batch = collate([root, branch], drops=[0, 3])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 10, 11, 20, 21, 22]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, 4, 5]]
    assert batch["targets"].tolist() == [[-100, -100, -100, 11, -100, 21, 22, -100]]
    assert batch["num_targets"] == 3 and batch["dropped"] == 3
    with pytest.raises(ValueError, match="untrained"):
        collate([root, Example(input_ids=[1, 2, 3, 4], labels=[-100, -100, -100, 4])], drops=[0, 3])
