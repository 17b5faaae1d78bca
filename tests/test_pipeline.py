"""`agentmill train` end to end on a tiny random-init model: run directory, manifest, eval, atomicity."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentmill.config import load_recipe
from agentmill.errors import AgentmillError, DataError
from agentmill.train.pipeline import partial_dir, train_recipe

INTENTS = {"balance": ["what is my balance", "how much money do I have", "show my account balance"],
           "card": ["I lost my card", "my card was stolen", "block my debit card"]}


def write_data(root: Path) -> None:
    data = root / "data"
    data.mkdir(parents=True)
    (data / "corpus.txt").write_text("\n\n".join(
        f"Paragraph {i}: interest compounds monthly and fees are low at Northwind Bank." for i in range(30)))
    with (data / "intent.jsonl").open("w") as f:
        for i in range(8):
            for label, texts in INTENTS.items():
                f.write(json.dumps({"text": f"{texts[i % 3]} please {i}", "label": label}) + "\n")
    with (data / "qa.jsonl").open("w") as f:
        for i in range(12):
            f.write(json.dumps({"instruction": f"What is {i} plus {i}?", "output": f"It is {2 * i}."}) + "\n")
    for name in ("dialogues", "cs", "tutor"):
        with (data / f"{name}.jsonl").open("w") as f:
            for i in range(10):
                f.write(json.dumps({"messages": [
                    {"role": "user", "content": f"My name is Ann{i}."}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "What is my name?"},
                    {"role": "assistant", "content": f"Your name is Ann{i}."}]}) + "\n")
    with (data / "cs.jsonl").open("a") as f:  # tool use: cs may call the calculator
        for i in range(10):
            f.write(json.dumps({"messages": [
                {"role": "user", "content": f"What is {i} times 3?"},
                {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {
                    "name": "calculator", "arguments": {"expression": f"{i} * 3"}}}]},
                {"role": "tool", "name": "calculator", "content": str(3 * i)},
                {"role": "assistant", "content": f"{i} times 3 is {3 * i}."}]}) + "\n")


RECIPE = textwrap.dedent("""\
    name: tiny
    base_model: {base}
    seed: 1
    lora: {{r: 4, alpha: 8}}
    train: {{max_length: 128, lr: 1.0e-3, max_steps: 2, grad_accum: 2, eval_every: 1, checkpoint_every: 1,
            eval_max_records: 4, precision: auto, report_to: tensorboard}}
    stages:
      - stage: pretrain
        data: [{{path: data/corpus.txt, format: text}}]
      - stage: finetune
        tasks:
          - {{name: intent, classifier: generative, data: {{path: data/intent.jsonl, format: classification}}}}
          - {{name: qa, data: {{path: data/qa.jsonl, format: instruction}}}}
      - stage: dialogue
        data: [{{path: data/dialogues.jsonl, format: chat}}]
      - stage: crosstask
        mode: per_task
        train: {{max_length: 384}}
        tasks:
          - {{name: cs, weight: 1.0, data: {{path: data/cs.jsonl, format: chat}}, system: You help.,
             tools: [calculator]}}
          - {{name: tutor, weight: 0.5, data: {{path: data/tutor.jsonl, format: chat}}}}
    """)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, tokenizer, tiny):
    folder = tmp_path_factory.mktemp("tiny-base")
    tiny.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def recipe_path(tmp_path, tiny_base):
    write_data(tmp_path)
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(base=tiny_base))
    return path


def metrics_of(out):
    return [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_a_complete_run_directory(recipe_path, tmp_path):
    out = tmp_path / "runs" / "tiny"
    run = train_recipe(load_recipe(recipe_path), out)
    assert run == out and not partial_dir(out).exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["stage"] for s in manifest["stages"]] == ["pretrain", "finetune", "dialogue", "crosstask"]
    assert manifest["tasks"]["intent"]["labels"] == ["balance", "card"]
    assert manifest["tasks"]["intent"]["adapter"] is None
    assert manifest["tasks"]["cs"]["adapter"] == "adapters/cs"
    for task in ("cs", "tutor"):
        config = json.loads((out / "adapters" / task / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(out.resolve() / "model")  # the merged backbone
        assert (out / "adapters" / task / "adapter_model.safetensors").exists()
    # the PEFT layout loads as it is (vLLM's --lora-modules reads the same two files)
    from peft import AutoPeftModelForCausalLM

    assert AutoPeftModelForCausalLM.from_pretrained(out / "adapters" / "cs").peft_config["default"].r > 0
    eval_points = [m for m in metrics_of(out) if m["split"] == "eval"]
    # eval_every 1: the loop measures step 1; the last point is the stage's "after" measurement, once
    pretrain_points = [m for m in eval_points if m["stage"] == "pretrain"]
    assert [m["step"] for m in pretrain_points] == [1, 2]
    assert pretrain_points[-1]["loss"] == pytest.approx(manifest["stages"][0]["after"]["eval_loss"])
    assert (out / "model" / "config.json").exists() and (out / "model" / "tokenizer.json").exists()
    assert (out / "stages" / "01-pretrain" / "adapter" / "adapter_model.safetensors").exists()
    pre = manifest["stages"][0]
    assert pre["steps"] == 2 and pre["train_tokens"] > 0 and pre["tokens_per_s"] > 0
    assert set(pre["before"]) == {"eval_loss", "perplexity"} and pre["after"]["perplexity"] > 1
    ev = json.loads((out / "eval.json").read_text())
    assert set(ev["tasks"]["intent"]) == {"accuracy", "macro_f1"}
    assert 0 <= ev["tasks"]["intent"]["accuracy"] <= 1
    assert {"exact_match", "token_f1", "eval_loss"} <= set(ev["tasks"]["qa"])
    assert "perplexity" in ev["tasks"]["domain"]
    metrics = metrics_of(out)
    train_steps = [(m["stage"], m["task"], m["step"]) for m in metrics if m["split"] == "train"]
    assert ("crosstask", "tutor", 2) in train_steps and ("pretrain", None, 1) in train_steps
    assert any(f.name.startswith("events.out.tfevents") for f in (out / "tensorboard").iterdir())
    report = (out / "report.md").read_text()
    assert "pretrain" in report and "plots/" in report
    resolved = (out / "recipe.yaml").read_text()
    assert "max_steps: 2" in resolved
    # the router: a classifier on sentence embeddings over the crosstask task names, scored on
    # every held-out routing message
    assert manifest["router"] == {"kind": "embedding", "path": "adapters/router", "labels": ["cs", "tutor"],
                                  "heldout": "adapters/router/heldout.jsonl"}
    assert (out / "adapters" / "router" / "classifier.safetensors").exists()
    assert not (out / "adapters" / "router" / "adapter_config.json").exists()
    held = [json.loads(l) for l in (out / "adapters" / "router" / "heldout.jsonl").read_text().splitlines()]
    assert held and {h["label"] for h in held} <= {"cs", "tutor"}
    assert set(ev["tasks"]["router"]) == {"accuracy", "macro_f1", "records"}
    assert ev["tasks"]["router"]["records"] == len(held)
    # tools: the task's allow-list and system prompt are in the manifest; tool use is measured
    assert manifest["tasks"]["cs"]["tools"] == ["calculator"] and manifest["tasks"]["cs"]["system"] == "You help."
    assert manifest["tools"] == {"modules": [], "settings": {}, "confirm": []}
    assert 0 <= ev["tasks"]["cs"]["tool_call_exact"] <= 1 and ev["tasks"]["cs"]["tool_records"] >= 1
    assert "tool_call_exact" not in ev["tasks"]["tutor"]
    # `agentmill eval` encodes each task as its stage did (crosstask: max_length 384, not 128)
    assert manifest["tasks"]["cs"]["encoding"] == {"max_length": 384, "mask": "assistant"}
    assert manifest["tasks"]["intent"]["encoding"]["max_length"] == 128
    from agentmill.eval.run_eval import evaluate_run

    misses = tmp_path / "misses" / "cs.jsonl"
    again = evaluate_run(out, task="cs", misses=misses)["tasks"]["cs"]
    assert again["eval_loss"] == pytest.approx(ev["tasks"]["cs"]["eval_loss"], abs=1e-4)
    # --misses: one line per case scored wrong, as many as the metric counts
    wrong = [json.loads(l) for l in misses.read_text().splitlines()]
    for metric, records in (("tool_call_exact", "tool_records"), ("tool_answer_match", "tool_answer_records")):
        mine = [w for w in wrong if w["metric"] == metric]
        assert len(mine) == round((1 - again[metric]) * again[records])
    calls = [w for w in wrong if w["metric"] == "tool_call_exact"]
    for w in calls:
        i = int(w["question"].split()[2])  # "What is {i} times 3?"
        assert w["task"] == "cs" and w["right"] is False
        assert w["gold"]["function"]["arguments"] == {"expression": f"{i} * 3"}
    from agentmill.agent.router import Router
    from agentmill.model.run import RunModel

    loaded = RunModel.load(out)
    task, scores = Router(loaded).route("What is 4 times 3?")
    assert task in ("cs", "tutor") and set(scores) == {"cs", "tutor"} and scores[task] == max(scores.values())


def test_router_kind_adapter_trains_a_classification_adapter(recipe_path, tmp_path):
    out = tmp_path / "runs" / "adapter-router"
    train_recipe(load_recipe(recipe_path, ["stages.3.router_kind=adapter"]), out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["router"]["kind"] == "adapter" and manifest["router"]["adapter"] == "adapters/router"
    assert (out / "adapters" / "router" / "adapter_config.json").exists()
    assert set(json.loads((out / "eval.json").read_text())["tasks"]["router"]) == {"accuracy", "macro_f1"}
    from agentmill.agent.router import Router
    from agentmill.model.run import RunModel

    task, scores = Router(RunModel.load(out)).route("What is 4 times 3?")
    assert task in ("cs", "tutor") and scores[task] == max(scores.values())


def test_classifier_embedding_keeps_a_classification_task_beside_the_backbone(recipe_path, tmp_path):
    out = tmp_path / "runs" / "embedded-intent"
    train_recipe(load_recipe(recipe_path, ["stages.1.tasks.0.classifier=embedding"]), out)
    manifest = json.loads((out / "manifest.json").read_text())
    intent = manifest["tasks"]["intent"]
    assert intent["classifier"] == "classifiers/intent" and intent["adapter"] is None
    assert intent["labels"] == ["balance", "card"]
    assert (out / "classifiers" / "intent" / "classifier.safetensors").exists()
    finetune = manifest["stages"][1]
    assert finetune["steps"] == 2 and set(finetune["after"]) == {"intent", "qa"}  # qa still trains the model
    ev = json.loads((out / "eval.json").read_text())["tasks"]["intent"]
    held = finetune["after"]["intent"]
    assert set(ev) == {"accuracy", "macro_f1", "records"} and ev == held and ev["records"] >= 1
    from agentmill.agent.agent import Agent
    from agentmill.model.run import RunModel
    from agentmill.tools.setup import registry_for_run

    run = RunModel.load(out)
    agent = Agent(run, registry_for_run(run))
    result = agent.turn("my card was stolen please", task="intent")
    assert result.answer in ("balance", "card") and result.usage.completion_tokens == 0  # no generation
    assert result.answer == run.classifiers["intent"].predict(["my card was stolen please"])[0]


@pytest.mark.parametrize("change, message", [
    ("stages.1.tasks.1.classifier=embedding", "classifier: embedding needs format: classification"),
    ("stages.3.tasks.1.classifier=embedding", "'tutor': classifier: embedding needs format: classification"),
])
def test_classifier_embedding_is_refused_where_it_cannot_work(recipe_path, change, message):
    with pytest.raises(AgentmillError, match=message):
        load_recipe(recipe_path, [change])


def test_bad_data_is_reported_with_file_and_line_and_nothing_is_written(recipe_path, tmp_path):
    with (tmp_path / "data" / "intent.jsonl").open("a") as f:
        f.write('{"text": "hello", "label": 3}\n')
        f.write('not json\n')
    out = tmp_path / "runs" / "bad"
    with pytest.raises(DataError) as err:
        train_recipe(load_recipe(recipe_path), out)
    assert f"{tmp_path / 'data' / 'intent.jsonl'}:17:" in str(err.value)
    assert f"{tmp_path / 'data' / 'intent.jsonl'}:18:" in str(err.value)
    assert not out.exists() and not partial_dir(out).exists()


def test_eval_label_never_seen_in_training(recipe_path, tmp_path):
    held = tmp_path / "data" / "intent_held.jsonl"
    held.write_text(json.dumps({"text": "open an account", "label": "open_account"}) + "\n")
    text = recipe_path.read_text().replace(
        "{name: intent, classifier: generative, data: {path: data/intent.jsonl, format: classification}}",
        "{name: intent, classifier: generative, data: {path: data/intent.jsonl, format: classification}, "
        "eval_data: {path: data/intent_held.jsonl, format: classification}}")
    recipe_path.write_text(text)
    with pytest.raises(DataError, match=r"intent_held.jsonl:1: label 'open_account' never appears"):
        train_recipe(load_recipe(recipe_path), tmp_path / "runs" / "x")


def test_max_length_too_small_is_reported(recipe_path, tmp_path):
    with pytest.raises(AgentmillError, match=r"dialogues.jsonl:1: .*max_length"):
        train_recipe(load_recipe(recipe_path, ["train.max_length=16"]), tmp_path / "runs" / "x")


def test_base_model_that_cannot_be_loaded(recipe_path, tmp_path):
    with pytest.raises(AgentmillError, match="local"):
        train_recipe(load_recipe(recipe_path, ["base_model=nobody/not-a-model-xyz"]), tmp_path / "runs" / "x")
    with pytest.raises(AgentmillError, match="does not exist"):
        train_recipe(load_recipe(recipe_path, ["base_model=./missing-folder"]), tmp_path / "runs" / "x")


def test_existing_output_and_partial_run_are_not_overwritten(recipe_path, tmp_path):
    out = tmp_path / "runs" / "tiny"
    partial_dir(out).mkdir(parents=True)
    with pytest.raises(AgentmillError, match="--resume"):
        train_recipe(load_recipe(recipe_path), out)
    out.mkdir()
    with pytest.raises(AgentmillError, match="already exists"):
        train_recipe(load_recipe(recipe_path), out)


# fp32 on purpose: resume must reproduce the uninterrupted losses bit for bit, on either CPU kind
RESUME_RECIPE = textwrap.dedent("""\
    name: tiny-resume
    base_model: {base}
    seed: 3
    lora: {{r: 4, alpha: 8}}
    train: {{max_length: 128, lr: 1.0e-3, max_steps: 6, grad_accum: 1, eval_every: 100, checkpoint_every: 2,
            eval_max_records: 2, precision: fp32, report_to: none}}
    stages:
      - stage: pretrain
        data: [{{path: data/corpus.txt, format: text}}]
      - stage: dialogue
        data: [{{path: data/dialogues.jsonl, format: chat}}]
    """)


def test_train_killed_with_sigkill_resumes_to_the_same_result(tmp_path, tiny_base):
    import signal
    import time

    write_data(tmp_path)
    recipe = tmp_path / "resume.yaml"
    recipe.write_text(RESUME_RECIPE.format(base=tiny_base))
    cmd = [sys.executable, "-m", "agentmill.cli", "train", str(recipe)]
    env = {**os.environ, "AGENTMILL_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    straight = subprocess.run(cmd + ["--out", str(tmp_path / "a")], env=env, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-2000:]

    out = tmp_path / "b"
    watched = partial_dir(out) / "stages" / "02-dialogue" / "checkpoints" / "step-2" / "state.pt"
    proc = subprocess.Popen(cmd + ["--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not watched.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -9, "the run finished before it could be killed"
    assert not out.exists() and partial_dir(out).exists()  # nothing that looks finished

    again = subprocess.run(cmd + ["--out", str(out)], env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = subprocess.run(cmd + ["--out", str(out), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())["stages"]
    b = json.loads((out / "manifest.json").read_text())["stages"]
    for sa, sb in zip(a, b):
        assert sa["steps"] == sb["steps"] and sa["train_tokens"] == sb["train_tokens"]
        assert abs(sa["final_train_loss"] - sb["final_train_loss"]) <= 1e-3
        assert abs(sa["after"]["eval_loss"] - sb["after"]["eval_loss"]) <= 1e-3
    steps = [(m["stage"], m["step"]) for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if m["split"] == "train"]
    assert len(steps) == len(set(steps)) == 12  # each step logged once, no duplicates from the killed attempt


def test_replay_draws_evenly_from_earlier_supervised_stages(recipe_path, tokenizer, tmp_path):
    from agentmill.train.common import StageContext, examples_of, replay_examples
    from agentmill.train.pipeline import load_datasets

    recipe = load_recipe(recipe_path, ["stages.1.replay=0.5", "stages.2.replay=0.5", "stages.3.replay=0.3"])
    ctx = StageContext(recipe=recipe, tokenizer=tokenizer, model=None, accelerator=None, work_dir=tmp_path,
                       logger=None, datasets=load_datasets(recipe))
    finetune, dialogue, crosstask = recipe.stages[1:]
    spec = recipe.stage_train(dialogue)
    pool = lambda specs: {tuple(e.input_ids) for e in examples_of(ctx, specs, spec)}
    intent, qa, dialogues = pool([finetune.tasks[0].data]), pool([finetune.tasks[1].data]), pool(dialogue.data)

    got = [tuple(e.input_ids) for e in replay_examples(ctx, 3, dialogue, 10, spec)]
    assert len(got) == 5
    assert sum(g in intent for g in got) == 3 and sum(g in qa for g in got) == 2  # tasks alternate
    assert got == [tuple(e.input_ids) for e in replay_examples(ctx, 3, dialogue, 10, spec)]  # deterministic

    got = [tuple(e.input_ids) for e in replay_examples(ctx, 4, crosstask, 30, spec)]
    assert len(got) == 9 and len(set(got)) == 9
    assert [sum(g in p for g in got) for p in (intent, qa, dialogues)] == [3, 3, 3]
    assert replay_examples(ctx, 2, finetune, 10, spec) == []  # only pretrain before: text is never replayed


def test_training_and_the_agent_prompt_a_task_identically(recipe_path, tokenizer, tmp_path):
    """One rendering: a tool record of task cs, as trained, starts with exactly the agent's prompt."""
    from agentmill.agent.agent import Agent
    from agentmill.data.render import render
    from agentmill.model.run import RunModel
    from agentmill.train.pipeline import apply_task_prompts, load_datasets
    from agentmill.tools.setup import registry_from_spec

    recipe = load_recipe(recipe_path)
    datasets = load_datasets(recipe)
    apply_task_prompts(recipe, datasets)
    cs = recipe.stages[3].tasks[0]
    record = next(r for r in datasets[str(cs.data.path)].train if any(m.get("tool_calls") for m in r.messages))
    assert record.messages[0] == {"role": "system", "content": "You help."}
    assert [t["function"]["name"] for t in record.tools] == ["calculator"]
    trained = render(tokenizer, record.messages, tools=record.tools)

    manifest = {"tasks": {"cs": {"format": "chat", "adapter": None, "system": cs.system, "tools": cs.tools}},
                "tools": recipe.tools.model_dump(mode="json")}
    agent = Agent(RunModel.from_parts(None, tokenizer, manifest), registry_from_spec(manifest["tools"]),
                  forced_task="cs")
    agent.steps.append(__import__("agentmill.agent.steps", fromlist=["UserStep"]).UserStep(record.messages[1]["content"]))
    messages, schemas = agent.prompt("cs")
    prompt = render(tokenizer, messages, add_generation_prompt=True, tools=schemas)
    assert trained.startswith(prompt) and "<tools>" in prompt and "calculator" in prompt


def test_unknown_tool_in_an_allow_list_is_named(recipe_path, tmp_path):
    recipe = load_recipe(recipe_path, ["stages.3.tasks.0.tools=[calculater]"])
    with pytest.raises(AgentmillError, match=r"task 'cs', tools: .*calculater.*did you mean 'calculator'"):
        train_recipe(recipe, tmp_path / "runs" / "x")
    assert not (tmp_path / "runs").exists()


def test_lora_top_layers_adapts_only_the_top_decoder_layers(recipe_path, tokenizer):
    from peft import get_peft_model

    from agentmill.model.load import tiny_model
    from agentmill.train.common import lora_config

    recipe = load_recipe(recipe_path, ["lora.top_layers=1"])
    model = tiny_model(tokenizer)
    n_layers = model.config.num_hidden_layers
    assert n_layers >= 2
    config = lora_config(recipe, model)
    assert set(config.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    peft_model = get_peft_model(model, config)
    adapted = {int(name.split(".layers.")[1].split(".")[0]) for name, _ in peft_model.named_parameters()
               if "lora_A" in name}
    assert adapted == {n_layers - 1}
    everywhere = load_recipe(recipe_path)
    assert lora_config(everywhere, model).layers_to_transform is None


def test_general_tool_use_is_trained_and_scored_on_unseen_tools(recipe_path, tmp_path):
    out = tmp_path / "runs" / "general-tools"
    train_recipe(load_recipe(recipe_path, ["stages.3.tool_use=general", "stages.3.tool_use_records=12",
                                           "stages.3.tool_use_heldout=6", "stages.3.tasks.0.tool_use=general"]), out)
    crosstask = json.loads((out / "manifest.json").read_text())["stages"][3]
    keys = {"unseen_tool_exact", "no_tool_when_none_fits", "tool_call_parsed", "unseen_tool_records",
            "none_fits_records", "asks_when_values_missing", "values_missing_records"}
    for measured in (crosstask["before"]["tool_use"], crosstask["after"]["tool_use"],
                     crosstask["per_task"]["cs"]["after"], crosstask["per_task"]["tutor"]["after"]):
        assert keys <= set(measured)
        assert measured["unseen_tool_records"] + measured["none_fits_records"] + measured["values_missing_records"] == 6
        assert 0.0 <= measured["unseen_tool_exact"] <= 1.0
    # the calls the untrained tiny model starts are decoded within the offered schemas
    assert crosstask["after"]["tool_use"]["tool_call_parsed"] == 1.0


def test_tool_use_outside_crosstask_is_refused(recipe_path):
    with pytest.raises(AgentmillError, match="'qa': tool_use is a crosstask-stage option"):
        load_recipe(recipe_path, ["stages.1.tasks.1.tool_use=general"])
