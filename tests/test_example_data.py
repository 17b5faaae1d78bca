"""The example's tool conversations are consistent: every result is what the real tool returns for
the call's arguments, and every answer after a numeric result states that number."""

import json
from pathlib import Path

import pytest

from agentmill.data.formats import Record
from agentmill.eval.tooluse import states_number, tool_cases
from agentmill.tools.accounts import make_account_lookup
from agentmill.tools.calculator import calculator
from agentmill.tools.finance import compound_interest, loan_payment
from agentmill.tools.registry import ToolRegistry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finance-advisor"
FILES = ["advisor.jsonl", "advisor_heldout.jsonl", "cs.jsonl", "cs_heldout.jsonl"]


@pytest.fixture(scope="module")
def numeric_tools(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTMILL_HOME", str(tmp_path_factory.mktemp("agentmill_home")))
        registry = ToolRegistry()
        for tool in (calculator, loan_payment, compound_interest, make_account_lookup(EXAMPLE / "bank.sql")):
            registry.add(tool)
        yield registry


def _records(name):
    lines = (EXAMPLE / "data" / name).read_text().splitlines()
    return [Record(source=f"{name}:{i + 1}", messages=json.loads(line)["messages"]) for i, line in enumerate(lines)]


@pytest.mark.parametrize("name", FILES)
def test_tool_results_are_the_real_tools_output(name, numeric_tools):
    checked = 0
    for record in _records(name):
        messages = record.messages
        for i, m in enumerate(messages):
            for call in m.get("tool_calls") or []:
                fn = call["function"]
                if fn["name"] == "knowledge_search":
                    continue  # needs the embedding index; its queries are checked below
                assert messages[i + 1]["content"] == numeric_tools.get(fn["name"]).run(fn["arguments"]), record.source
                checked += 1
    assert checked >= 5


@pytest.mark.parametrize("name", FILES)
def test_answers_state_the_tools_number_and_searches_quote_the_question(name):
    cases = tool_cases(_records(name))
    numeric = [c for c in cases if c.number is not None]
    assert len(numeric) >= 5
    for c in numeric:
        assert states_number(c.gold_answer, c.number), (c.gold_answer, c.number)
    for c in cases:
        asked = c.call_prompt[-1]["content"]
        if c.gold_call["function"]["name"] == "knowledge_search" and isinstance(asked, str):
            assert c.gold_call["function"]["arguments"]["query"] == asked
        # a spoken question's query is what speech recognition heard: test_spoken_queries_are_what_was_heard


@pytest.mark.integration
def test_spoken_queries_are_what_was_heard(tmp_path, monkeypatch):
    """The held-out customer-service records, read as training reads them (Whisper, the recipe's
    prompt): a spoken policy question is searched with exactly its transcript."""
    from agentmill.config import load_recipe
    from agentmill.data.formats import read_records
    from agentmill.media import MediaBackends

    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path))
    media = MediaBackends(load_recipe(EXAMPLE / "recipe.yaml").media)
    spoken = [r for r in read_records(EXAMPLE / "data" / "cs_heldout.jsonl", "chat", media) if r.media
              and r.messages[0]["content"].startswith("[audio ")]
    searched = [c for c in tool_cases(spoken) if c.gold_call["function"]["name"] == "knowledge_search"]
    assert len(searched) >= 5
    for c in searched:
        heard = c.call_prompt[-1]["content"].split("transcript] ", 1)[1]
        assert c.gold_call["function"]["arguments"]["query"] == heard
