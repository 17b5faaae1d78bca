"""The example's tool conversations are consistent: every result is what the real tool returns for
the call's arguments, and every answer after a numeric result states that number."""

import json
import os
import subprocess
import sys
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
    # only the spoken searches are heard (the images and other recordings would cost Whisper and
    # Tesseract time for nothing): their lines, beside a link to the example's media folder
    (tmp_path / "data").mkdir()
    (tmp_path / "media").symlink_to(EXAMPLE / "media")
    lines = [line for line in (EXAMPLE / "data" / "cs_heldout.jsonl").read_text().splitlines()
             if '"input_audio"' in line and '"knowledge_search"' in line]
    (tmp_path / "data" / "spoken.jsonl").write_text("\n".join(lines) + "\n")
    spoken = [r for r in read_records(tmp_path / "data" / "spoken.jsonl", "chat", media) if r.media
              and r.messages[0]["content"].startswith("[audio ")]
    searched = [c for c in tool_cases(spoken) if c.gold_call["function"]["name"] == "knowledge_search"]
    assert len(searched) >= 5
    for c in searched:
        heard = c.call_prompt[-1]["content"].split("transcript] ", 1)[1]
        assert c.gold_call["function"]["arguments"]["query"] == heard


# each path in a process of its own: CTranslate2 picks its matrix library once per process
HEAR = """
import json, sys
from pathlib import Path
from agentmill.config import load_recipe
from agentmill.media import MediaBackends
from agentmill.media.parts import read_media
backends = MediaBackends(load_recipe(Path(sys.argv[1])).media)
print(json.dumps([read_media(backends, "audio", Path(p).read_bytes(), error_name=p).text for p in sys.argv[2:]]))
"""
CPU_PATHS = {"oneDNN": {"CT2_USE_MKL": "0"}, "Intel MKL": {"CT2_USE_MKL": "1"},
             "oneDNN, AVX2 only": {"CT2_USE_MKL": "0", "ONEDNN_MAX_CPU_ISA": "AVX2", "CT2_FORCE_CPU_ISA": "AVX2"}}


@pytest.mark.integration
def test_recordings_are_heard_the_same_on_every_cpu():
    """With the recipe's speech settings, the held-out spoken searches give the same transcripts on the
    paths CTranslate2 takes on Intel (MKL), AMD (oneDNN) and AVX2-only CPUs: what training, the
    spoken-search gold and a user's server hear does not depend on the machine (int8 fails this)."""
    clips = sorted({str((EXAMPLE / "data" / part["input_audio"]["path"]).resolve())
                    for r in map(json.loads, (EXAMPLE / "data" / "cs_heldout.jsonl").read_text().splitlines())
                    for m in r["messages"] if isinstance(m.get("content"), list)
                    for part in m["content"] if part.get("type") == "input_audio"
                    and any(c["function"]["name"] == "knowledge_search"
                            for n in r["messages"] for c in n.get("tool_calls") or [])})
    assert len(clips) >= 5  # the held-out spoken searches, whose query is the transcript
    heard = {}
    for name, env in CPU_PATHS.items():
        done = subprocess.run([sys.executable, "-c", HEAR, str(EXAMPLE / "recipe.yaml"), *clips], check=True,
                              capture_output=True, text=True, env={**os.environ, **env})
        heard[name] = json.loads(done.stdout.strip().splitlines()[-1])
    for name, texts in heard.items():
        differ = [(Path(c).name, a, b) for c, a, b in zip(clips, heard["oneDNN"], texts) if a != b]
        assert not differ, f"{name} hears differently from oneDNN: {differ}"
