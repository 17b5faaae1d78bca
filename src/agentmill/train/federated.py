"""Stage `federated`: one task's LoRA adapter trained by data owners that never pool their data.

On Flower (flwr): each client owns one data file, trains the adapter on it for
`local_steps` and sends back only the adapter's weights and its example count; the server
averages them (FedAvg, weighted by examples; FedProx also keeps each client's local training
near the round's global adapter) and starts the next round. Here the clients run
in Flower's simulation engine (Ray), each in a process of its own; the server process never
opens a client's data file (it only hands each client the path it owns). The server scores the
global adapter on its own held-out file before the first round and after each one.

The result is a task adapter like crosstask's per_task ones (RUN_DIR/adapters/TASK), so chat,
serve, eval and export work on the run unchanged.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

from agentmill.config import FederatedStage, Recipe, TrainSpec
from agentmill.errors import AgentmillError
from agentmill.paths import write_json_atomic
from agentmill.hardware import choose_precision
from agentmill.train.common import StageContext, eval_datasets, is_main, lora_arguments, settle, stage_dir_of, task_schemas

ARRAYS, CONFIG, METRICS = "arrays", "config", "metrics"
DATA_MARK = "[bad data]"


# ------------------------------------------------------------------ the client (its own process)

_backbones: dict[str, tuple] = {}


def _backbone(folder: str):
    """The backbone and tokenizer a client trains on, loaded once per client process."""
    if folder not in _backbones:
        from agentmill.model.load import load_model, load_tokenizer

        model = load_model(folder, dtype=torch.float32)
        for p in model.parameters():
            p.requires_grad_(False)
        _backbones.clear()
        _backbones[folder] = (model, load_tokenizer(folder))
    return _backbones[folder]


_examples: dict[str, list] = {}


def client_examples(job: dict, client: int, tokenizer) -> list:
    """The client's own records, validated (FILE:LINE errors) and prompted as the task is at run time;
    read once per client process while the file and the options stay the same (every round trains on it)."""
    data = job["clients"][client]["data"]
    stat = Path(data["path"]).stat() if Path(data["path"]).exists() else None
    key = json.dumps([data, stat and [stat.st_mtime_ns, stat.st_size], job["system"], job["schemas"], job["train"]],
                     sort_keys=True, default=str)
    if key in _examples:
        return _examples[key]
    from agentmill.config import DataSpec, MediaSettings
    from agentmill.data.formats import apply_task_prompt
    from agentmill.errors import DataError
    from agentmill.eval.evaluate import encode_records
    from agentmill.media import MediaBackends
    from agentmill.train.common import read_all

    spec = DataSpec(**job["clients"][client]["data"])
    try:
        records = read_all(spec, MediaBackends(MediaSettings(**job["media"])))
    except DataError as err:  # a recipe problem, not a flaky client: the server stops on it whatever the rule
        raise RuntimeError(f"{DATA_MARK} client '{job['clients'][client]['name']}': "
                           + "; ".join(err.problems[:5])) from None
    if job["system"] or job["schemas"]:
        apply_task_prompt(records, spec.format, job["system"], job["schemas"])
    _examples[key] = encode_records(tokenizer, records, spec.format, TrainSpec(**job["train"]))
    return _examples[key]


def train_client(job: dict, client: int, server_round: int, weights: dict[str, torch.Tensor], work: Path,
                 proximal_mu: float = 0.0):
    """One client's round: the global adapter, `local_steps` on its own data (FedProx: held near the
    global adapter by `proximal_mu`); (weights, examples, result)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    from agentmill.train.loop import train_loop
    from agentmill.train.tracking import MetricsLogger  # disabled: the reply carries the round's loss and time

    torch.set_num_threads(max(1, job["threads"]))
    backbone, tokenizer = _backbone(job["backbone"])
    examples = client_examples(job, client, tokenizer)
    if not examples:
        raise AgentmillError(f"client '{job['clients'][client]['name']}': {job['clients'][client]['data']['path']} "
                             f"holds no records")
    model = get_peft_model(backbone, LoraConfig(**job["lora"]))
    try:
        set_peft_model_state_dict(model, weights)
        AcceleratorState._reset_state()
        # the precision that is fast on this client's machine (a deployed one may differ from the server)
        accelerator = Accelerator(mixed_precision=choose_precision(job["train"]["precision"]).accelerate, cpu=True)
        spec = TrainSpec(**{**job["train"], "max_steps": job["local_steps"], "epochs": 1})
        seed = job["seed"] + 1000 * server_round + client
        result = train_loop(model, examples, [], spec, accelerator=accelerator, ckpt_dir=work / "checkpoints",
                            logger=MetricsLogger(work, enabled=False), stage="federated", task=job["task"], seed=seed,
                            eval_at_end=False, proximal_mu=proximal_mu)
        trained = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    finally:
        model.unload()
        shutil.rmtree(work, ignore_errors=True)
    return trained, len(examples), result


def node_job(job: dict, node_config) -> tuple[dict, int]:
    """The job as this node runs it, and which client (data owner) the node is.

    The node's config says who it is (`client="north"` or `partition-id=0`, an index into the
    recipe's clients) and, when deployed, where its own data and backbone are on its machine
    (`data-path`, `data-format`, `backbone`) and how many CPU threads it trains with (`threads`):
    the server only ever sends the recipe's paths."""
    names = [c["name"] for c in job["clients"]]
    if "client" in node_config:
        if node_config["client"] not in names:
            raise AgentmillError(f"node config client={node_config['client']!r}: the recipe's clients are "
                                 f"{', '.join(names)}")
        client = names.index(node_config["client"])
    elif "partition-id" in node_config:
        client = int(node_config["partition-id"])
        if not 0 <= client < len(names):
            raise AgentmillError(f"node config partition-id={client}: the recipe has {len(names)} clients")
    else:
        raise AgentmillError("this node's config names no client: start it with --node-config "
                             f"'client=\"NAME\"' (one of {', '.join(names)})")
    job = copy.deepcopy(job)
    data = job["clients"][client]["data"]
    if "data-path" in node_config:
        data["path"] = str(Path(str(node_config["data-path"])).expanduser())
    if "data-format" in node_config:
        data["format"] = str(node_config["data-format"])
    if "backbone" in node_config:
        job["backbone"] = str(node_config["backbone"])
    if "threads" in node_config:
        job["threads"] = int(node_config["threads"])
    return job, client


def client_app():
    """Flower's ClientApp, simulated or deployed alike: the round's message carries the job (the
    recipe's task, training options, LoRA shape); the node's config says which client it is."""
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        job, client = node_job(json.loads(str(msg.content[CONFIG]["job"])), context.node_config)
        server_round = int(msg.content[CONFIG]["server-round"])
        if client in job.get("fail", {}).get(str(server_round), []):  # tests: a client that breaks mid-round
            raise RuntimeError(f"client '{job['clients'][client]['name']}' failed (injected)")
        weights = msg.content[ARRAYS].to_torch_state_dict()
        mu = float(msg.content[CONFIG].get("proximal-mu", 0.0))  # set by Flower's FedProx strategy
        # removed even when the client fails before its training starts (a missing data file)
        with tempfile.TemporaryDirectory(prefix=f"agentmill-{job['clients'][client]['name']}-{server_round}-") as tmp:
            trained, n, result = train_client(job, client, server_round, weights, Path(tmp) / "work", proximal_mu=mu)
        metrics = MetricRecord({"num-examples": n, "train_loss": float(result.final_loss), "client": client,
                                "steps": result.steps, "tokens": result.tokens, "wall_s": result.wall_s,
                                "proximal_mu": mu})
        return Message(RecordDict({ARRAYS: ArrayRecord(trained), METRICS: metrics}), reply_to=msg)

    return app


# ------------------------------------------------------------------ the server


def weighted_mean(updates: list[tuple[dict[str, torch.Tensor], int]]) -> dict[str, torch.Tensor]:
    """FedAvg: each tensor the mean of the clients' weighted by their example counts."""
    total = sum(n for _, n in updates)
    return {k: sum(w[k].double() * (n / total) for w, n in updates).to(updates[0][0][k].dtype)
            for k in updates[0][0]}


def mean_loss(clients: list[dict]) -> float:
    """The clients' local training loss, weighted by their example counts."""
    return sum(c["train_loss"] * c["examples"] for c in clients) / sum(c["examples"] for c in clients)


def _reason(text: str) -> str:
    """The client's own error out of Flower's wrapping ("... Message: REASON'>")."""
    last = (text or "").strip().splitlines()[-1:] or ["no reason given"]
    return last[0].split("Message: ", 1)[-1].removesuffix("'>").strip()


def _strategy(stage: FederatedStage, names: list[str], history: list[dict]):
    from flwr.serverapp.strategy import FedAvg, FedProx

    sampled = max(1, math.ceil(stage.fraction * len(names)))
    base, options = (FedProx, {"proximal_mu": stage.proximal_mu}) if stage.strategy == "fedprox" else (FedAvg, {})

    class Averaging(base):
        """FedAvg/FedProx (the same mean; FedProx sends the clients its mu) that records every
        client's reply per round and applies `on_client_failure`."""

        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            row = {"round": server_round, "clients": [], "failed": []}
            updates = []
            for msg in replies:
                if msg.has_error():
                    row["failed"].append({"node": int(msg.metadata.src_node_id), "reason": _reason(msg.error.reason)})
                    continue
                m = msg.content[METRICS]
                row["clients"].append({"client": names[int(m["client"])], "examples": int(m["num-examples"]),
                                       "train_loss": float(m["train_loss"]), "steps": int(m["steps"]),
                                       "wall_s": float(m["wall_s"]), "proximal_mu": float(m["proximal_mu"])})
                updates.append((msg.content[ARRAYS].to_torch_state_dict(), int(m["num-examples"])))
            for earlier in history:  # the clients' weights of the latest round only (tests compare them)
                earlier.pop("updates", None)
            order = sorted(range(len(updates)), key=lambda i: names.index(row["clients"][i]["client"]))
            row["clients"] = [row["clients"][i] for i in order]
            updates = [updates[i] for i in order]  # the mean in client order: the same sum on every run
            row["updates"] = updates
            history.append(row)
            missing = sampled - len(updates)
            # a sampled client with neither a reply nor an error ran past round_timeout_s
            row["timed_out"] = max(0, missing - len(row["failed"]))
            bad = [f["reason"] for f in row["failed"] if f["reason"].startswith(DATA_MARK)]
            if bad:
                raise AgentmillError("federated round {}: a client's data failed validation: {}".format(
                    server_round, "; ".join(b.removeprefix(DATA_MARK).strip() for b in bad)))
            if not updates or (missing and stage.on_client_failure == "fail"):
                reasons = [f["reason"] for f in row["failed"]]
                if row["timed_out"]:
                    reasons.append(f"{row['timed_out']} gave no reply within round_timeout_s "
                                   f"({stage.round_timeout_s:g} s)")
                reasons = "; ".join(reasons)
                raise AgentmillError(f"federated round {server_round}: {missing} of {sampled} clients failed "
                                     f"(on_client_failure: {stage.on_client_failure}): {reasons}")
            from flwr.app import ArrayRecord, MetricRecord

            row["aggregate"] = weighted_mean(updates)
            return ArrayRecord(row["aggregate"]), MetricRecord({"train_loss": mean_loss(row["clients"]),
                                                                "num-examples": sum(n for _, n in updates)})

    return Averaging(fraction_train=stage.fraction, fraction_evaluate=0.0, min_train_nodes=sampled,
                     min_available_nodes=len(names), **options)


# The SuperLink's grid while a deployed ServerApp runs the recipe (train/federated_app.py): the
# stage then sends its rounds there instead of starting a simulation.
DEPLOYED: dict = {"grid": None}


def undeployable(recipe: Recipe) -> str | None:
    """Why `recipe` cannot run on a deployed federation (None: it can)."""
    at = [i for i, s in enumerate(recipe.stages, 1) if isinstance(s, FederatedStage)]
    if at == [1]:
        return None
    return (f"a deployed federation's clients train on the base model ({recipe.base_model}), loaded on their own "
            f"machines, so the federated stage must be the recipe's first stage (here: stage "
            f"{', '.join(map(str, at))} of {len(recipe.stages)}); simulate it instead (agentmill federate without --app)")


def serve_rounds(grid, stage: FederatedStage, job: dict, initial: dict[str, torch.Tensor], evaluate) -> list[dict]:
    """`stage.rounds` rounds through `grid`; the history of the rounds (each: clients, failures,
    aggregate weights, the server's held-out loss; round 0 is before training)."""
    from flwr.app import ArrayRecord, ConfigRecord, MetricRecord

    names = [c.name for c in stage.clients]
    history: list[dict] = []
    losses: dict[int, float] = {}

    def central(server_round: int, arrays: ArrayRecord):
        losses[server_round] = evaluate(arrays.to_torch_state_dict())
        return MetricRecord({"eval_loss": losses[server_round]})

    _strategy(stage, names, history).start(grid=grid, initial_arrays=ArrayRecord(initial), num_rounds=stage.rounds,
                                           timeout=stage.round_timeout_s, evaluate_fn=central,
                                           train_config=ConfigRecord({"job": json.dumps(job)}))
    for row in history:
        row["eval_loss"] = losses.get(row["round"])
    return [{"round": 0, "clients": [], "failed": [], "eval_loss": losses.get(0)}] + history


def run_federation(stage: FederatedStage, job: dict, initial: dict[str, torch.Tensor], evaluate) -> list[dict]:
    """The rounds on the deployed SuperLink, or else in Flower's simulation, one node per client."""
    if DEPLOYED["grid"] is not None:
        return serve_rounds(DEPLOYED["grid"], stage, job, initial, evaluate)
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp
    from flwr.simulation import run_simulation

    result: list[list[dict]] = []
    failure: list[BaseException] = []
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            result.append(serve_rounds(grid, stage, job, initial, evaluate))
        except BaseException as err:  # Flower logs and swallows the ServerApp's exceptions
            failure.append(err)

    cpus = max(1, job["threads"])
    run_simulation(server, client_app(), num_supernodes=len(stage.clients),
                   backend_config={"client_resources": {"num_cpus": cpus, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": cpus * min(len(stage.clients), stage.parallel_clients),
                                                 "include_dashboard": False}})
    if failure or not result:
        err = failure[0] if failure else RuntimeError("the simulation ended without running the rounds")
        raise err if isinstance(err, AgentmillError) else AgentmillError(f"federated training failed: {err}")
    return result[0]


def run(ctx: StageContext, stage: FederatedStage, index: int) -> dict:
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    from agentmill.eval.evaluate import encode_records
    from agentmill.tools.setup import registry_from_spec
    from agentmill.train.loop import evaluate_loss

    stage_dir = stage_dir_of(ctx, index, "federated")
    task = stage.tasks[0]
    ctx.tasks[task.name] = {"stage": "federated", "format": stage.heldout.format, "adapter": f"adapters/{task.name}"}
    out = ctx.work_dir / "adapters" / task.name
    if (stage_dir / "done.json").exists() and (out / "done.json").exists():
        return json.loads((stage_dir / "done.json").read_text())  # its adapter stays separate: nothing to merge
    try:
        import flwr  # noqa: F401
    except ImportError:
        raise AgentmillError("stage federated needs Flower: pip install 'agentmill[federated]' "
                             "(flwr with its simulation engine, Ray)") from None
    if ctx.accelerator.num_processes > 1:
        raise AgentmillError("stage federated runs its clients itself: launch it as one process, not under "
                             "torchrun/accelerate with several")
    recipe: Recipe = ctx.recipe
    spec = recipe.stage_train(stage)
    started = time.perf_counter()
    deployed = DEPLOYED["grid"] is not None
    stage_dir.mkdir(parents=True, exist_ok=True)
    if deployed and (why := undeployable(recipe)):
        raise AgentmillError(f"stage {index} (federated): {why}")
    # what each client loads: the simulated ones the backbone as it is now, deployed ones the base model
    # on their own machine (or their node config's `backbone`)
    backbone = recipe.base_model if deployed else stage_dir / "backbone"
    if not deployed:
        ctx.model.save_pretrained(backbone)
        ctx.tokenizer.save_pretrained(backbone)
    arguments = lora_arguments(recipe, ctx.model)
    torch.manual_seed(recipe.seed)
    model = get_peft_model(ctx.model, LoraConfig(**arguments))
    initial = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    held = encode_records(ctx.tokenizer, ctx.dataset(stage.heldout).heldout, stage.heldout.format, spec)

    def evaluate(weights):
        set_peft_model_state_dict(model, weights)
        loss, _ = evaluate_loss(model, held, spec, ctx.accelerator)
        ctx.say(f"  federated: server's held-out loss {loss:.4f}")
        return loss

    job = {"task": task.name, "backbone": str(backbone), "clients": [c.model_dump(mode="json") for c in stage.clients],
           "system": task.system, "schemas": task_schemas(registry_from_spec(recipe.tools.model_dump(mode="json")), task),
           "media": recipe.media.model_dump(mode="json"), "train": spec.model_dump(mode="json"),
           "local_steps": stage.local_steps, "lora": arguments, "seed": recipe.seed,
           "threads": stage.client_threads, "fail": stage.inject_failures}
    ctx.say(f"  federated: {len(stage.clients)} clients ({', '.join(c.name for c in stage.clients)}), "
            f"{stage.rounds} rounds of {stage.local_steps} local steps, "
            + (f"FedProx (mu {stage.proximal_mu:g})" if stage.strategy == "fedprox" else "FedAvg")
            + " weighted by examples")
    try:
        history = run_federation(stage, job, initial, evaluate)
    finally:
        if not deployed:
            shutil.rmtree(backbone, ignore_errors=True)
    final = history[-1]["aggregate"] if len(history) > 1 else initial
    set_peft_model_state_dict(model, final)
    after = eval_datasets(ctx, model, [(task.name, task.eval_data)], spec).get(task.name, {})
    rounds = [{k: v for k, v in row.items() if k not in ("aggregate", "updates")} for row in history]
    for row in rounds:
        ctx.say(f"  round {row['round']}: held-out loss {row['eval_loss']:.4f}; "
                + ", ".join(f"{c['client']} {c['examples']} examples, loss {c['train_loss']:.4f}" for c in row["clients"])
                + "".join(f"; a client failed: {f['reason']}" for f in row["failed"])
                + (f"; {row['timed_out']} gave no reply within round_timeout_s" if row.get("timed_out") else ""))
        if is_main(ctx) and row["clients"]:  # per client: the stage record and rounds.json
            ctx.logger.log({"stage": "federated", "task": task.name, "split": "train", "step": row["round"],
                            "loss": mean_loss(row["clients"])})
            if row["eval_loss"] is not None:
                ctx.logger.log({"stage": "federated", "task": task.name, "split": "eval", "step": row["round"],
                                "loss": row["eval_loss"]})
    if is_main(ctx):
        model.save_pretrained(out)
    ctx.model = model.unload()
    trained = sum(c["examples"] for row in rounds for c in row["clients"])
    record = {"stage": "federated", "index": index, "adapter": None, "before": {}, "after": {task.name: after},
              "rounds": rounds, "clients": [c.name for c in stage.clients], "steps": stage.rounds * stage.local_steps,
              "strategy": stage.strategy, "proximal_mu": stage.proximal_mu if stage.strategy == "fedprox" else None,
              "train_tokens": 0, "tokens_per_s": 0.0, "wall_s": time.perf_counter() - started,
              "examples_trained": trained, "final_loss": rounds[-1]["eval_loss"]}
    if is_main(ctx):
        write_json_atomic(out / "done.json", {"after": after, "rounds": rounds})
        write_json_atomic(stage_dir / "done.json", record)
        write_json_atomic(stage_dir / "rounds.json", rounds)
    settle(ctx)
    return record
