"""Training under a launcher: never silently undistributed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors.torch import load_file

from agentmill.errors import AgentmillError
from agentmill.train.pipeline import check_distributed


def test_a_launcher_without_a_process_group_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(AgentmillError, match="WORLD_SIZE is 2, but this process trains alone.*ACCELERATE_USE_CPU=true"):
        check_distributed(SimpleNamespace(num_processes=1))
    check_distributed(SimpleNamespace(num_processes=2))  # a formed group of 2
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_distributed(SimpleNamespace(num_processes=1))
    monkeypatch.delenv("WORLD_SIZE")
    check_distributed(SimpleNamespace(num_processes=1))



DDP_RECIPE = """\
name: ddp
base_model: {base}
seed: 3
lora: {{r: 4, alpha: 8}}
train: {{max_length: 64, lr: 1.0e-3, max_steps: 3, grad_accum: 4, eval_every: 3, checkpoint_every: 10,
        eval_max_records: 4, precision: fp32, report_to: none}}
stages:
  - stage: pretrain
    data: [{{path: corpus.txt, format: text}}]
  - stage: crosstask
    mode: per_task
    train: {{max_steps: 2}}
    tasks:
      - {{name: cs, data: {{path: chat.jsonl, format: chat}}, system: You help.}}
      - {{name: tutor, data: {{path: chat.jsonl, format: chat}}}}
"""


def _inputs(tmp_path, tokenizer, tiny, paragraphs: int = 40) -> Path:
    """The tiny base model, a corpus and a chat file in `tmp_path`; the base model's folder."""
    base = tmp_path / "base"
    tiny.save_pretrained(base)
    tokenizer.save_pretrained(base)
    (tmp_path / "corpus.txt").write_text("\n\n".join(
        f"Paragraph {i}: Northwind Bank pays {i % 7} percent on savings and charges no monthly fee." * 2
        for i in range(paragraphs)))
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"My name is Ann{i}."}, {"role": "assistant", "content": f"Hello Ann{i}!"}]})
        + "\n" for i in range(24)))
    return base


def _launch(recipe: Path, nproc: int, out: Path, *extra: str, cpu_flag: bool = True) -> tuple[list[str], dict]:
    """(command line, environment) of `agentmill train` on `nproc` processes under torchrun; the
    same global batch of 4 rows a step, all on one process or 2 on each of two."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AGENTMILL_PROGRESS": "0"}
    env.pop("ACCELERATE_USE_CPU", None)
    if cpu_flag:
        env["ACCELERATE_USE_CPU"] = "true"
    return ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m",
             "agentmill.cli", "train", str(recipe), f"train.grad_accum={4 // nproc}", "--out", str(out), *extra], env)


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["split"] == "train"]


def _train(recipe: Path, nproc: int, out: Path, cpu_flag: bool = True) -> list[float]:
    command, env = _launch(recipe, nproc, out, cpu_flag=cpu_flag)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    # a failing rank's own error, not the barrier error the others then raise
    assert done.returncode == 0, "\n".join(l for l in done.stderr.splitlines() if "rank1" not in l)[-4000:]
    return _losses(out)


def _rank_pid(out, rank: int):
    """The pid of the training process of local rank `rank` writing to `out` (from /proc)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, PermissionError):
            continue
        if str(out).encode() in cmdline and b"agentmill.cli" in cmdline and f"LOCAL_RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


def _adapter(out: Path, stage: str = "01-pretrain") -> dict:
    return load_file(out / "stages" / stage / "adapter" / "adapter_model.safetensors")


# One test, four launches: each launch starts torch in every process (most of its time on 2 cores),
# so the killed-and-resumed run is the plain-torchrun one and is held to the single process's end.
def test_two_processes_train_like_one_and_a_killed_rank_resumes(tmp_path, tokenizer, tiny):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(DDP_RECIPE.format(base=_inputs(tmp_path, tokenizer, tiny, paragraphs=80))
                      .replace("max_steps: 3,", "max_steps: 16,").replace("checkpoint_every: 10", "checkpoint_every: 2")
                      .replace("eval_every: 3", "eval_every: 16"))
    one, two = tmp_path / "one", tmp_path / "two"
    single = _train(recipe, 1, one)
    double = _train(recipe, 2, two)
    assert len(single) == len(double) == 16 + 2 + 2 + 2  # pretrain, crosstask shared, then each task
    assert double == pytest.approx(single, rel=1e-4)  # each process takes its half of every global batch
    assert single[0] != pytest.approx(single[15], rel=1e-3)  # it trained
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())  # one run, written once
    assert not list(tmp_path.glob(".*partial"))

    # plain torchrun, no ACCELERATE_USE_CPU: agentmill asks accelerate for the CPU itself, so the
    # process group forms all the same (plain accelerate would run two undistributed copies, whose
    # losses differ); rank 1 is killed mid-pretrain and the run resumed
    killed = tmp_path / "plain"
    command, env = _launch(recipe, 2, killed, cpu_flag=False)
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoint = tmp_path / ".plain.partial" / "stages" / "01-pretrain" / "checkpoints" / "step-4"
    deadline = time.time() + 300
    while not checkpoint.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    pid = _rank_pid(killed, 1)
    assert pid is not None and job.poll() is None, "the run ended before a rank could be killed"
    os.kill(pid, signal.SIGKILL)
    assert job.wait(timeout=120) != 0 and not killed.exists()
    command, env = _launch(recipe, 2, killed, "--resume", cpu_flag=False)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]

    assert _losses(killed) == pytest.approx(single, rel=1e-4)
    for stage in ("01-pretrain", "02-crosstask"):
        theirs, ours = _adapter(one, stage), _adapter(killed, stage)
        for name, tensor in theirs.items():
            assert ours[name].allclose(tensor, rtol=1e-4, atol=1e-6), (stage, name)
