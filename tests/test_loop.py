"""The shared training loop: loss normalisation, exact resume after kill -9, DDP with 2 processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from agentmill.config import TrainSpec
from agentmill.data.pack import collate
from agentmill.data.render import Example
from agentmill.train.loop import accumulate_gradients, rows_of_step, total_steps

SCRIPT = Path(__file__).with_name("loop_script.py")


def _examples():
    g = torch.Generator().manual_seed(0)
    out = []
    for length, cut in [(30, 25), (12, 2), (20, 10), (9, 4), (40, 39)]:  # very different trained counts
        ids = torch.randint(0, 500, (length,), generator=g).tolist()
        out.append(Example(input_ids=ids, labels=[-100] * cut + ids[cut:]))
    return out


def test_loss_is_normalised_by_trained_tokens_of_the_whole_step(tiny):
    model = tiny
    params = [p for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)
    ex = _examples()
    # reference: every trained token of the step weighs the same
    model.zero_grad()
    total, count = 0.0, 0
    for e in ex:
        logits = model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0, :-1]
        labels = torch.tensor(e.labels[1:])
        total = total + F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
        count += int((labels != -100).sum())
    (total / count).backward()
    ref = [p.grad.clone() for p in params]
    model.zero_grad()
    # the loop: rows of unequal sizes, several micro-batches
    batches = [collate([ex[0], ex[1]]), collate([ex[2]]), collate([ex[3], ex[4]])]
    loss_sum, n, seen = accumulate_gradients(model, batches, Accelerator(cpu=True), params)
    assert n == count and seen == sum(len(e.input_ids) for e in ex)
    assert abs(loss_sum / n - (total.item() / count)) < 1e-5
    for g, r in zip([p.grad for p in params], ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
    model.zero_grad()
    for p in params:
        p.requires_grad_(False)


def test_step_plan_covers_every_row_once_per_epoch():
    spec = TrainSpec(epochs=2, grad_accum=3)
    n_rows, per_step = 10, 3
    steps = total_steps(n_rows, per_step, spec)
    assert steps == 8  # ceil(10/3) = 4 steps per epoch, 2 epochs
    first_epoch = [r for s in range(4) for r in rows_of_step(s, n_rows, per_step, seed=1)]
    assert set(first_epoch) == set(range(10))
    assert rows_of_step(0, n_rows, per_step, 1) != rows_of_step(4, n_rows, per_step, 1)  # reshuffled
    assert rows_of_step(5, n_rows, per_step, 1) == rows_of_step(5, n_rows, per_step, 1)  # deterministic


def test_steps_mix_the_shared_prefix_groups_of_their_rows():
    groups = [0] * 6 + [1] * 3 + [2] * 3  # rows of three tasks, one task per row (shared prefixes)
    n_rows, per_step = len(groups), 4
    for seed in (1, 2, 3):
        steps = [rows_of_step(s, n_rows, per_step, seed, groups) for s in range(3)]
        assert sorted(r for step in steps for r in step) == list(range(n_rows))  # every row once
        for step in steps:  # the big group fills half of each step, the others a quarter each
            assert sorted(groups[r] for r in step) == [0, 0, 1, 2]
    assert rows_of_step(0, n_rows, per_step, 1, groups) != rows_of_step(0, n_rows, per_step, 2, groups)
    assert rows_of_step(0, n_rows, per_step, 1, [5] * n_rows) == rows_of_step(0, n_rows, per_step, 1)  # one group


def _run(args, env_extra=None, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          check=False, timeout=600, **kw)


def test_resume_after_kill_9_ends_where_the_uninterrupted_run_ends(tmp_path):
    straight = _run([str(tmp_path / "a")])
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = _run([str(tmp_path / "b"), "--die-after", "5"])
    assert killed.returncode == -9
    assert not (tmp_path / "b" / "losses.json").exists()
    ckpts = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert ckpts == ["step-2", "step-4"]  # the last two complete checkpoints, no temp folder
    resumed = _run([str(tmp_path / "b"), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "a" / "losses.json").read_text())
    b = json.loads((tmp_path / "b" / "losses.json").read_text())
    assert sorted(b["losses"], key=int)[0] == "5"  # resumed from step 4's checkpoint
    assert abs(a["final"] - b["final"]) <= 1e-3
    for step in ("6", "7", "8"):
        assert abs(a["losses"][step] - b["losses"][step]) <= 1e-3
    assert a["tokens"] == b["tokens"]


def test_same_loop_under_accelerate_launch_with_two_processes(tmp_path):
    """2 CPU processes x grad_accum 1 take the same rows per step as 1 process x grad_accum 2."""
    # no LoRA dropout: the two processes draw different masks than one process would
    single = _run([str(tmp_path / "one"), "--grad-accum", "2", "--steps", "4"], env_extra={"DROP": "0"})
    assert single.returncode == 0, single.stderr[-2000:]
    launcher = str(Path(sys.executable).parent / "accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DROP": "0"}
    ddp = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
                          str(SCRIPT), str(tmp_path / "two"), "--grad-accum", "1", "--steps", "4"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "losses.json").read_text())
    two = json.loads((tmp_path / "two" / "losses.json").read_text())
    assert one["tokens"] == two["tokens"]
    for step in ("1", "2", "3", "4"):
        assert abs(one["losses"][step] - two["losses"][step]) < 1e-4, (step, one["losses"], two["losses"])


def test_unset_epochs_give_small_data_enough_steps():
    spec = TrainSpec(grad_accum=4)
    assert total_steps(10, 4, spec) == 24  # 3 steps a pass: min_steps 120 would be 40 passes, capped at 8
    assert total_steps(200, 4, spec) == 120  # 50 a pass: raised to min_steps
    assert total_steps(1000, 4, spec) == 250  # one pass is enough
    assert total_steps(10, 4, TrainSpec(grad_accum=4, epochs=1)) == 3  # an explicit epochs is kept
    assert total_steps(10, 4, TrainSpec(grad_accum=4, max_steps=7)) == 7


class _Snapshots:
    """A logger that keeps the trainable weights after every step."""

    def __init__(self, model):
        self.model, self.weights, self.records = model, {}, []

    def log(self, record):
        self.records.append(record)
        if record["split"] == "train":
            self.weights[record["step"]] = {n: p.detach().clone() for n, p in self.model.named_parameters()
                                            if p.requires_grad}


def test_keep_best_ends_with_the_lowest_held_out_loss_and_patience_stops(tmp_path, tokenizer, monkeypatch):
    from peft import LoraConfig, get_peft_model

    import agentmill.train.loop as loop
    from agentmill.model.load import tiny_model

    model = tiny_model(tokenizer, seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    scripted = iter([1.0, 0.5, 0.7, 0.8, 0.9, 0.1])  # step 2 is the best; 3 worse ones stop at step 5
    monkeypatch.setattr(loop, "evaluate_loss", lambda *a, **k: (next(scripted), 10))
    spec = TrainSpec(max_length=64, lr=1e-2, max_steps=8, grad_accum=1, eval_every=1, checkpoint_every=100,
                     precision="fp32", patience=3)
    log = _Snapshots(model)
    result = loop.train_loop(model, _examples(), _examples()[:2], spec, accelerator=Accelerator(cpu=True),
                             ckpt_dir=tmp_path / "ckpt", logger=log, stage="test", seed=1)
    assert result.steps == 5 and result.eval_loss == 0.5
    assert [r["step"] for r in log.records if r["split"] == "eval"] == [1, 2, 3, 4, 5]
    assert [(r["step"], r["loss"]) for r in log.records if r["split"] == "best"] == [(2, 0.5)]
    now = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for n, w in log.weights[2].items():
        torch.testing.assert_close(now[n], w, rtol=0, atol=0)
    assert any(not torch.equal(log.weights[5][n], w) for n, w in log.weights[2].items())  # it did move on


def test_keep_best_off_keeps_the_last_step(tmp_path, tokenizer, monkeypatch):
    from peft import LoraConfig, get_peft_model

    import agentmill.train.loop as loop
    from agentmill.model.load import tiny_model

    model = get_peft_model(tiny_model(tokenizer, seed=0), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                                       lora_dropout=0.0))
    scripted = iter([0.5, 0.9, 0.9])
    monkeypatch.setattr(loop, "evaluate_loss", lambda *a, **k: (next(scripted), 10))
    spec = TrainSpec(max_length=64, lr=1e-2, max_steps=3, grad_accum=1, eval_every=1, checkpoint_every=100,
                     precision="fp32", keep_best=False, patience=None)
    log = _Snapshots(model)
    result = loop.train_loop(model, _examples(), _examples()[:2], spec, accelerator=Accelerator(cpu=True),
                             ckpt_dir=tmp_path / "ckpt", logger=log, stage="test", seed=1)
    assert result.steps == 3 and result.eval_loss == 0.9
    now = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for n, w in log.weights[3].items():
        torch.testing.assert_close(now[n], w, rtol=0, atol=0)
