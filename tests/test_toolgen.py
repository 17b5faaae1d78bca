"""Generated general tool-use data (data/toolgen.py): valid, deterministic, and unseen tools really unseen."""

import json
import random

import jsonschema
import pytest

from agentmill.data.tool_catalog import POOLS, TRAIN_TOOLS, UNSEEN_TOOLS
from agentmill.data.toolgen import answer_kind, fill, general_tool_records, general_tool_use


def test_same_seed_same_records_other_seed_other_records():
    a = general_tool_records(50, "train", seed=3)
    assert a == general_tool_records(50, "train", seed=3)
    assert a != general_tool_records(50, "train", seed=4)


def test_records_are_distinct_and_parse_as_chat_records():
    records = general_tool_use(400, "train", seed=0)
    assert len(records) == 400
    keys = {(r.messages[-2]["content"], tuple(t["function"]["name"] for t in r.tools)) for r in records}
    assert len(keys) == 400
    assert all(1 <= len(r.tools) <= 4 for r in records)


def test_unseen_pool_shares_no_tool_or_domain_with_training():
    assert not {t.name for t in TRAIN_TOOLS} & {t.name for t in UNSEEN_TOOLS}
    assert not {t.domain for t in TRAIN_TOOLS} & {t.domain for t in UNSEEN_TOOLS}
    for r in general_tool_records(200, "unseen", seed=0):
        assert {t["function"]["name"] for t in r["tools"]} <= {t.name for t in UNSEEN_TOOLS}


@pytest.mark.parametrize("pool", ["train", "unseen"])
def test_every_call_is_valid_for_its_schema_and_offered(pool):
    calls = 0
    for r in general_tool_records(300, pool, seed=1):
        answer = r["messages"][-1]
        offered = {t["function"]["name"]: t["function"] for t in r["tools"]}
        if not answer.get("tool_calls"):
            continue
        calls += 1
        fn = answer["tool_calls"][0]["function"]
        assert fn["name"] in offered
        jsonschema.validate(fn["arguments"], offered[fn["name"]]["parameters"])
    assert calls > 150


def test_no_tool_fits_records_offer_other_tools_and_say_so():
    records = general_tool_records(300, "train", seed=2)
    none = [r for r in records if answer_kind(r) == "none_fits"]
    assert 30 <= len(none) <= 90  # about a fifth
    for r in none:
        answer = r["messages"][-1]["content"]
        assert answer.startswith("I can't do that with the tools I have here.")
        for t in r["tools"]:  # the answer lists what the offered tools can do
            description = t["function"]["description"].rstrip(".")
            assert (description[0].lower() + description[1:]) in answer


@pytest.mark.parametrize("pool", ["train", "unseen"])
def test_asking_records_offer_the_tool_say_none_of_its_required_values_and_ask_for_them(pool):
    records = general_tool_records(200, pool, seed=4)
    asking = [r for r in records if answer_kind(r) == "ask"]
    assert len(asking) == 20  # the default tenth
    catalog = {t.description: t for t in (TRAIN_TOOLS if pool == "train" else UNSEEN_TOOLS)}
    for r in asking:
        question, answer = r["messages"][-2]["content"], r["messages"][-1]["content"]
        tool = next(t for d, t in catalog.items() if d.rstrip(".")[1:] in question)
        offered = {t["function"]["description"] for t in r["tools"]}
        assert tool.description in offered  # the fitting tool is offered: asking is the right move
        required = [p for p in tool.params if p.required]
        assert required
        for p in required:
            assert p.description.split(",")[0][1:] in answer  # the answer asks for each one
        assert "tool_calls" not in r["messages"][-1]
    assert general_tool_records(200, pool, seed=4, ask=0.0)[:180] == records[:180]


def test_values_are_converted_to_the_schema_type():
    tool = next(t for t in TRAIN_TOOLS if t.name == "savings_projection")
    rng = random.Random(0)
    seen_pct = False
    for _ in range(30):
        question, arguments = fill(tool, tool.asks[0], rng)
        assert isinstance(arguments["years"], int)
        assert isinstance(arguments["monthly_deposit"], (int, float))
        rate = arguments["rate_percent"]
        if f"{rate}%" in question:
            seen_pct = True
        assert f"{rate}%" in question or f"{rate} percent" in question
        deposit = arguments["monthly_deposit"]
        assert f"{deposit:,}" in question or str(deposit) in question
    assert seen_pct


def test_optional_parts_are_said_or_left_out_and_booleans_mean_the_non_default():
    tool = next(t for t in TRAIN_TOOLS if t.name == "book_table")
    rng = random.Random(1)
    outdoor = [fill(tool, tool.asks[0], rng) for _ in range(40)]
    said = [a for q, a in outdoor if "outdoor" in q]
    assert said and all(a["outdoor"] is True for a in said)
    assert any("outdoor" not in a for q, a in outdoor)
    assert all({"restaurant", "party_size", "time"} <= a.keys() for _, a in outdoor)


def test_words_for_small_integers_and_spaces_for_enum_underscores():
    rng = random.Random(5)
    tool = next(t for t in TRAIN_TOOLS if t.name == "search_flights")
    words = [(q, a) for q, a in (fill(tool, tool.asks[0], rng) for _ in range(80))
             if "passengers" in a and str(a["passengers"]) not in q]
    assert words  # "for three passengers" -> 3
    sort_tool = next(t for t in TRAIN_TOOLS if t.name == "search_products")
    for q, a in (fill(sort_tool, sort_tool.asks[0], rng) for _ in range(40)):
        if a.get("sort") in ("price_low", "price_high"):
            assert a["sort"].replace("_", " ") in q


def test_nested_object_fields_are_filled():
    tool = next(t for t in UNSEEN_TOOLS if t.name == "ship_package")
    question, arguments = fill(tool, tool.asks[0], random.Random(0))
    assert set(arguments["destination"]) == {"city", "postcode"}
    assert arguments["destination"]["city"] in POOLS["city"] and arguments["destination"]["city"] in question


def test_unknown_pool_is_refused():
    with pytest.raises(ValueError, match="train' or 'unseen"):
        general_tool_records(5, "other")


def test_schemas_are_valid_json_schemas():
    for tool in TRAIN_TOOLS + UNSEEN_TOOLS:
        jsonschema.Draft202012Validator.check_schema(tool.schema()["function"]["parameters"])
        json.dumps(tool.schema())
