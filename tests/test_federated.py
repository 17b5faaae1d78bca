"""Federated fine-tuning on Flower's simulation engine: 3 clients, tiny model."""

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentmill.config import load_recipe
from agentmill.errors import AgentmillError
from agentmill.train import federated
from agentmill.train.pipeline import partial_dir, train_recipe

RECIPE = """\
name: fed
base_model: {base}
seed: 5
lora: {{r: 4, alpha: 8}}
train: {{max_length: 96, lr: 3.0e-3, grad_accum: 1, eval_max_records: 6, precision: fp32, report_to: none}}
stages:
  - stage: federated
    task: cs
    system: You help Northwind Bank's customers.
    heldout: {{path: server_heldout.jsonl, format: chat}}
    clients:
      - {{name: north, data: {{path: north.jsonl, format: chat}}}}
      - {{name: south, data: {{path: south.jsonl, format: chat}}}}
      - {{name: east, data: {{path: east.jsonl, format: chat}}}}
    rounds: 2
    local_steps: 4
    on_client_failure: {rule}
    inject_failures: {{"1": [2]}}   # east breaks in round 1
{extra}"""


def _chat(i: int) -> str:
    return json.dumps({"messages": [{"role": "user", "content": f"What is the fee of card {i}?"},
                                    {"role": "assistant", "content": f"Card {i} has no monthly fee."}]}) + "\n"


def _write(tmp_path, tokenizer, tiny, rule: str, extra: str = "") -> Path:
    base = tmp_path / "base"
    tiny.save_pretrained(base)
    tokenizer.save_pretrained(base)
    for name, start, n in (("north", 0, 6), ("south", 100, 9), ("east", 200, 12), ("server_heldout", 300, 6)):
        (tmp_path / f"{name}.jsonl").write_text("".join(_chat(start + i) for i in range(n)))
    recipe = tmp_path / "fed.yaml"
    recipe.write_text(RECIPE.format(base=base, rule=rule, extra=extra))
    return recipe


def test_federated_rounds_average_the_clients_and_never_open_their_data(tmp_path, tokenizer, tiny, monkeypatch):
    # FedProx: the server's mean is FedAvg's; its mu reaches every client (and is reported back)
    recipe = load_recipe(_write(tmp_path, tokenizer, tiny, "skip", "    strategy: fedprox\n    proximal_mu: 0.5\n"))
    clients = {str(c.data.path) for c in recipe.stages[0].clients}
    opened = []

    def audit(event, args):
        if event == "open" and args and str(args[0]) in clients:
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # the server process: clients run in processes of their own
    averaged = []
    real_mean = federated.weighted_mean

    def recording_mean(updates):
        result = real_mean(updates)
        averaged.append((updates, result))
        return result

    monkeypatch.setattr(federated, "weighted_mean", recording_mean)
    run = train_recipe(recipe, tmp_path / "run")

    assert opened == []
    rounds = json.loads((run / "stages" / "01-federated" / "rounds.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert [c["client"] for c in rounds[1]["clients"]] == ["north", "south"] and len(rounds[1]["failed"]) == 1
    assert "east" in rounds[1]["failed"][0]["reason"]  # the failure is reported, the round completes
    assert sorted((c["client"], c["examples"]) for c in rounds[2]["clients"]) == [("east", 12), ("north", 6), ("south", 9)]
    assert rounds[2]["eval_loss"] < rounds[0]["eval_loss"]
    assert {c["proximal_mu"] for r in rounds[1:] for c in r["clients"]} == {0.5}
    record = json.loads((run / "stages" / "01-federated" / "done.json").read_text())
    assert (record["strategy"], record["proximal_mu"]) == ("fedprox", 0.5)

    assert len(averaged) == 2
    for updates, result in averaged:  # FedAvg: the example-weighted mean of what the clients sent
        total = sum(n for _, n in updates)
        for key, tensor in result.items():
            expected = sum(w[key].double() * (n / total) for w, n in updates).float()
            assert torch.equal(tensor, expected), key
        assert not all(torch.equal(updates[0][0][k], updates[1][0][k]) for k in result)  # clients differ
    saved = load_file(run / "adapters" / "cs" / "adapter_model.safetensors")
    final = averaged[-1][1]
    assert len(saved) == len(final)
    for name, tensor in saved.items():
        assert torch.equal(tensor, final[name]), name

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["tasks"]["cs"]["adapter"] == "adapters/cs"
    assert manifest["tasks"]["cs"]["system"] == "You help Northwind Bank's customers."
    assert "cs" in json.loads((run / "eval.json").read_text())["tasks"]


def test_a_failing_client_stops_the_run_under_the_fail_rule(tmp_path, tokenizer, tiny):
    recipe = load_recipe(_write(tmp_path, tokenizer, tiny, "fail"))
    with pytest.raises(AgentmillError, match=r"round 1: 1 of 3 clients failed .*east.*failed \(injected\)"):
        train_recipe(recipe, tmp_path / "run")
    assert not (tmp_path / "run").exists() and partial_dir(tmp_path / "run").exists()


def test_federated_recipe_errors(tmp_path, tokenizer, tiny):
    path = _write(tmp_path, tokenizer, tiny, "skip")
    text = path.read_text()
    path.write_text(text.replace("name: east", "name: north"))
    with pytest.raises(AgentmillError, match="client names must be unique"):
        load_recipe(path)
    path.write_text(text.replace("    rounds: 2", "    proximal_mu: 0.1\n    rounds: 2"))
    with pytest.raises(AgentmillError, match=r"proximal_mu is an option of strategy: fedprox \(this stage's is fedavg\)"):
        load_recipe(path)


def test_a_client_with_bad_data_stops_the_run_with_file_and_line(tmp_path, tokenizer, tiny):
    path = _write(tmp_path, tokenizer, tiny, "skip")  # even under skip: bad data is the recipe's problem
    path.write_text(path.read_text().replace('inject_failures: {"1": [2]}', "inject_failures: {}"))
    south = tmp_path / "south.jsonl"
    south.write_text(south.read_text() + '{"messages": [{"role": "user"}]}\n')
    with pytest.raises(AgentmillError, match=r"data failed validation: client 'south': .*south.jsonl:10"):
        train_recipe(load_recipe(path), tmp_path / "run")
    assert not (tmp_path / "run").exists()


class _Reply:
    """What the strategy reads of a Flower reply (a real Message needs a running Flower run)."""

    def __init__(self, client: int, weights: dict, examples: int):
        from flwr.app import ArrayRecord, MetricRecord, RecordDict

        metrics = MetricRecord({"num-examples": examples, "train_loss": 0.5, "client": client, "steps": 4,
                                "tokens": 10, "wall_s": 1.0, "proximal_mu": 0.0})
        self.content = RecordDict({federated.ARRAYS: ArrayRecord(weights), federated.METRICS: metrics})

    def has_error(self) -> bool:
        return False


@pytest.mark.parametrize("rule", ["skip", "fail"])
def test_a_client_without_a_reply_in_time_is_counted_and_the_rule_applies(tmp_path, rule):
    """Flower returns the replies that came within round_timeout_s: a sampled client with neither a
    reply nor an error is reported as timed out; skip averages the others, fail stops naming the limit."""
    from agentmill.config import FederatedStage

    stage = FederatedStage.model_validate({
        "stage": "federated", "task": "cs", "heldout": {"path": "h.jsonl", "format": "chat"},
        "clients": [{"name": n, "data": {"path": f"{n}.jsonl", "format": "chat"}} for n in ("north", "south", "east")],
        "on_client_failure": rule, "round_timeout_s": 30})
    history: list[dict] = []
    strategy = federated._strategy(stage, ["north", "south", "east"], history)
    replies = [_Reply(0, {"w": torch.full((2,), 1.0)}, 1), _Reply(1, {"w": torch.full((2,), 4.0)}, 3)]  # east: none
    if rule == "fail":
        with pytest.raises(AgentmillError, match=r"1 of 3 clients failed.*no reply within round_timeout_s \(30 s\)"):
            strategy.aggregate_train(1, replies)
        return
    arrays, _ = strategy.aggregate_train(1, replies)
    assert history[0]["timed_out"] == 1 and history[0]["failed"] == []
    assert [c["client"] for c in history[0]["clients"]] == ["north", "south"]
    assert torch.equal(arrays.to_torch_state_dict()["w"], torch.full((2,), 3.25))  # (1*1 + 4*3) / 4


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_fedprox_term_is_the_gradient_of_the_proximal_penalty(mu):
    """grad += mu·(w - w0) is the gradient of (mu/2)·||w - w0||² added to the loss."""
    from agentmill.train.loop import add_proximal_gradient

    g = torch.Generator().manual_seed(0)
    w0 = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    params = [(w + 0.3 * torch.randn(w.shape, generator=g)).requires_grad_() for w in w0]
    x = torch.randn(4, generator=g)
    task_loss = lambda: (params[0] @ x).square().sum() + params[1].sum()  # noqa: E731
    task_loss().backward()
    add_proximal_gradient(params, w0, mu)
    ours = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    (task_loss() + mu / 2 * sum((p - w).square().sum() for p, w in zip(params, w0))).backward()
    for a, p in zip(ours, params):
        assert torch.allclose(a, p.grad, atol=1e-6)


def test_a_fedprox_client_stays_nearer_the_global_adapter(tmp_path, tokenizer, tiny):
    """One client's round in this process: the larger mu, the less its adapter moves from the global one."""
    from peft import get_peft_model, get_peft_model_state_dict

    from agentmill.train.common import lora_arguments, lora_config

    recipe = load_recipe(_write(tmp_path, tokenizer, tiny, "skip"))
    base = tmp_path / "base"
    config = lora_config(recipe, tiny)

    torch.manual_seed(0)
    peft_model = get_peft_model(copy.deepcopy(tiny), config)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:  # a global adapter that has been trained a little: B is not zero
            torch.nn.init.normal_(p, std=0.02)
    start = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    stage = recipe.stages[0]
    job = {"task": "cs", "backbone": str(base), "clients": [c.model_dump(mode="json") for c in stage.clients],
           "system": None, "schemas": None, "media": recipe.media.model_dump(mode="json"),
           "train": recipe.stage_train(stage).model_dump(mode="json"), "local_steps": 6, "lora": lora_arguments(recipe, tiny),
           "seed": 1, "threads": 1}
    moved = {}
    for mu in (0.0, 50.0):
        trained, n, _ = federated.train_client(job, 2, 1, start, tmp_path / f"work-{mu}", proximal_mu=mu)
        moved[mu] = sum((trained[k] - start[k]).square().sum().item() for k in start) ** 0.5
    assert n == 12 and moved[0.0] > 0
    assert moved[50.0] < 0.5 * moved[0.0]
