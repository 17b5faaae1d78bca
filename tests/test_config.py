"""Recipe loading: overrides, profiles, path resolution, errors with file:line and did-you-mean."""

import textwrap

import pytest

from agentmill.config import dump_recipe, load_recipe
from agentmill.errors import AgentmillError

RECIPE = textwrap.dedent("""\
    name: demo
    base_model: smollm2-135m-instruct
    seed: 7
    train: {max_length: 256, lr: 1.0e-4, epochs: 1}
    stages:
      - stage: pretrain
        data: [{path: data/corpus.txt, format: text}]
      - stage: crosstask
        mode: per_task
        tasks:
          - {name: a, weight: 2.0, data: {path: data/a.jsonl, format: chat}}
          - {name: b, data: {path: data/b.jsonl, format: chat}}
    profiles:
      quick: {train.max_steps: 3, stages.1.train.max_steps: 2}
      tools: {stages.1.tool_use: general, stages.1.train.max_steps: 7}
    """)


@pytest.fixture
def recipe_file(tmp_path):
    p = tmp_path / "sub" / "recipe.yaml"
    p.parent.mkdir()
    p.write_text(RECIPE)
    return p


def test_paths_are_relative_to_the_recipe(recipe_file):
    r = load_recipe(recipe_file)
    assert r.stages[0].data[0].path == recipe_file.parent / "data" / "corpus.txt"
    assert r.stages[1].tasks[0].weight == 2.0 and r.stages[1].tasks[1].weight == 1.0
    assert r.method == "lora" and r.lora.r == 16  # documented defaults


def test_overrides_and_profile(recipe_file):
    r = load_recipe(recipe_file, ["profile=quick", "train.lr=0.5", "seed=9"])
    assert r.profile == "quick"
    assert r.train.max_steps == 3 and r.train.lr == 0.5 and r.seed == 9
    assert r.stage_train(r.stages[0]).max_steps == 3
    assert r.stage_train(r.stages[1]).max_steps == 2  # stage override wins over the global one
    assert "profiles" not in dump_recipe(r)


def test_profiles_apply_in_the_order_given(recipe_file):
    r = load_recipe(recipe_file, ["profile=quick", "profile=tools"])
    assert r.stages[1].tool_use == "general" and r.stage_train(r.stages[1]).max_steps == 7
    assert r.train.max_steps == 3  # from quick, untouched by tools
    assert load_recipe(recipe_file, ["profile=tools", "profile=quick"]).stages[1].train["max_steps"] == 2


def test_command_line_overrides_win_over_profile(recipe_file):
    r = load_recipe(recipe_file, ["train.max_steps=11", "profile=quick"])
    assert r.train.max_steps == 11


def test_unknown_key_names_line_and_suggests(recipe_file):
    recipe_file.write_text(RECIPE.replace("mode: per_task", "mode: per_task\n    taks: []").replace("epochs: 1", "epoch: 1"))
    with pytest.raises(AgentmillError) as err:
        load_recipe(recipe_file)
    msg = str(err.value)
    assert f"{recipe_file}:4: unknown key 'train.epoch'; did you mean 'epochs'?" in msg
    assert f"{recipe_file}:10: unknown key 'stages.1.taks'; did you mean 'tasks'?" in msg


def test_wrong_type_and_unknown_stage(recipe_file):
    recipe_file.write_text(RECIPE.replace("lr: 1.0e-4", "lr: fast"))
    with pytest.raises(AgentmillError, match=r"recipe.yaml:4: train.lr"):
        load_recipe(recipe_file)
    recipe_file.write_text(RECIPE.replace("stage: pretrain", "stage: pretrian"))
    with pytest.raises(AgentmillError, match="pretrian"):
        load_recipe(recipe_file)


def test_bad_overrides_and_profiles(recipe_file):
    with pytest.raises(AgentmillError, match="no profile 'slow'"):
        load_recipe(recipe_file, ["profile=slow"])
    with pytest.raises(AgentmillError, match="not key=value"):
        load_recipe(recipe_file, ["train.lr"])
    with pytest.raises(AgentmillError, match="not an index"):
        load_recipe(recipe_file, ["stages.5.train.lr=1"])


def test_duplicate_task_and_full_per_task(recipe_file):
    recipe_file.write_text(RECIPE.replace("name: b,", "name: a,"))
    with pytest.raises(AgentmillError, match="task name 'a' is used twice"):
        load_recipe(recipe_file)
    recipe_file.write_text(RECIPE)
    with pytest.raises(AgentmillError, match="per_task .* needs method: lora"):
        load_recipe(recipe_file, ["method=full"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(AgentmillError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages: [\n")
    with pytest.raises(AgentmillError, match=r"bad.yaml:\d+: not valid YAML"):
        load_recipe(bad)


def test_a_recipe_without_a_name_is_named_after_its_file(tmp_path):
    p = tmp_path / "news-topics.yaml"
    p.write_text("base_model: smollm2-135m-instruct\nstages:\n  - stage: finetune\n    tasks:\n"
                 "      - {name: topic, data: {path: train.jsonl, format: classification}}\n")
    r = load_recipe(p)
    assert r.name == "news-topics"
    assert r.train.epochs is None and r.train.min_steps == 120 and r.train.keep_best  # the adaptive defaults


def test_classifier_auto_is_embedding_for_classification_in_finetune_only(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("stages:\n  - stage: finetune\n    tasks:\n"
                 "      - {name: topic, data: {path: t.jsonl, format: classification}}\n"
                 "      - {name: qa, data: {path: q.jsonl, format: instruction}}\n"
                 "      - {name: own, classifier: generative, data: {path: t.jsonl, format: classification}}\n"
                 "  - stage: crosstask\n    tasks:\n"
                 "      - {name: late, data: {path: t.jsonl, format: classification}}\n")
    tasks = {t.name: t.classifier for s in load_recipe(p).stages for t in s.tasks}
    assert tasks == {"topic": "embedding", "qa": "generative", "own": "generative", "late": "generative"}


def test_unset_lr_depends_on_the_method(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("stages:\n  - stage: pretrain\n    data: [{path: c.txt, format: text}]\n")
    lora = load_recipe(p)
    assert lora.train.lr is None and lora.stage_train(lora.stages[0]).lr == 1e-3
    full = load_recipe(p, ["method=full"])
    assert full.stage_train(full.stages[0]).lr == 5e-5
    assert load_recipe(p, ["train.lr=3e-4"]).stage_train(lora.stages[0]).lr == 3e-4
