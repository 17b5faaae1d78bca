"""Reading and validating data files: every format, every kind of bad input, FILE:LINE errors."""

import json

import pytest

from agentmill.data.formats import FORMATS, Record, classification_messages, read_records
from agentmill.errors import AgentmillError, DataError


def write(tmp_path, name, lines):
    """Write JSON Lines: dicts/lists are dumped, strings written as they are."""
    path = tmp_path / name
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return path


def problems(path, fmt):
    with pytest.raises(DataError) as err:
        read_records(path, fmt)
    return err.value.problems


# --- each format parses ------------------------------------------------------------------------

def test_text_txt_documents_split_on_blank_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("First doc line one.\nline two.\n\n\n   \nSecond doc.\n\nThird\n")
    records = read_records(path, "text")
    assert [r.text for r in records] == ["First doc line one.\nline two.", "Second doc.", "Third"]
    assert [r.source for r in records] == [f"{path}:1", f"{path}:6", f"{path}:8"]


def test_text_jsonl(tmp_path):
    path = write(tmp_path, "t.jsonl", [{"text": "alpha"}, "", {"text": "beta"}])
    records = read_records(path, "text")
    assert records == [Record(source=f"{path}:1", text="alpha"), Record(source=f"{path}:3", text="beta")]


def test_instruction(tmp_path):
    path = write(tmp_path, "i.jsonl", [
        {"instruction": "Translate", "input": "chat", "output": "cat", "system": "Be brief."},
        {"instruction": "Say hi", "input": "", "output": "hi"},
        {"instruction": "Say bye", "output": "bye"},
    ])
    r1, r2, r3 = read_records(path, "instruction")
    assert r1.messages == [{"role": "system", "content": "Be brief."},
                           {"role": "user", "content": "Translate\n\nchat"},
                           {"role": "assistant", "content": "cat"}]
    assert r2.messages == [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]
    assert r3.messages[0] == {"role": "user", "content": "Say bye"}
    assert r3.source == f"{path}:3"


def test_classification_and_its_messages(tmp_path):
    path = write(tmp_path, "c.jsonl", [{"text": "Goal!", "label": "sport"}])
    (r,) = read_records(path, "classification")
    assert (r.text, r.label, r.messages) == ("Goal!", "sport", None)
    msgs = classification_messages("Goal!", ["sport", "tech"], "sport")
    assert msgs == [
        {"role": "system", "content": "Classify the message into one of: sport, tech. Answer with the label only."},
        {"role": "user", "content": "Goal!"},
        {"role": "assistant", "content": "sport"},
    ]
    assert classification_messages("Goal!", ["sport", "tech"]) == msgs[:2]


def test_chat_openai_with_tool_calls_normalised(tmp_path):
    path = write(tmp_path, "chat.jsonl", [{"messages": [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "assistant", "content": "It is 18C."},
    ]}])
    (r,) = read_records(path, "chat")
    assert r.messages[2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}]}
    assert r.messages[3] == {"role": "tool", "content": "18C", "tool_call_id": "c1"}
    assert r.messages[4] == {"role": "assistant", "content": "It is 18C."}


def test_chat_sharegpt_converted(tmp_path):
    path = write(tmp_path, "sg.jsonl", [{"conversations": [
        {"from": "system", "value": "Be nice."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello!"},
        {"from": "function_call", "value": '{"name": "clock", "arguments": {}}'},
        {"from": "observation", "value": "12:00"},
        {"from": "gpt", "value": "Noon."},
    ]}])
    (r,) = read_records(path, "chat")
    assert r.messages == [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"type": "function", "function": {"name": "clock", "arguments": {}}}]},
        {"role": "tool", "content": "12:00"},
        {"role": "assistant", "content": "Noon."},
    ]


# --- bad records: exact FILE:LINE: reason ------------------------------------------------------

USER = {"role": "user", "content": "q"}
ASSISTANT = {"role": "assistant", "content": "a"}

BAD = [
    ("text", "{not json", "invalid JSON (Expecting property name enclosed in double quotes at column 2); "
                          "expected one JSON object per line"),
    ("text", '["a"]', "record must be a JSON object, got list"),
    ("text", {"txt": "a"}, 'missing field "text"'),
    ("text", {"text": "  "}, '"text" is empty'),
    ("classification", {"text": "a", "label": 3}, '"label" must be a string, got int'),
    ("classification", {"text": "a"}, 'missing field "label"'),
    ("instruction", {"instruction": "a", "output": ""}, '"output" is empty'),
    ("instruction", {"instruction": "a", "input": 5, "output": "b"}, '"input" must be a string, got int'),
    ("chat", {"msgs": []}, 'missing field "messages" (or ShareGPT "conversations")'),
    ("chat", {"messages": []}, '"messages" is empty'),
    ("chat", {"messages": [USER, {"role": "bot", "content": "a"}]},
     'unknown role "bot" in "messages[1]" (expected one of: system, user, assistant, tool)'),
    ("chat", {"messages": [USER, {"content": "a"}]}, 'missing field "messages[1].role"'),
    ("chat", {"messages": [USER]}, "no assistant message (nothing to train)"),
    ("chat", {"messages": [USER, {"role": "assistant", "content": ""}]},
     '"messages[1]" (assistant) has neither content nor tool_calls'),
    ("chat", {"messages": [{"role": "user", "content": ""}, ASSISTANT]}, '"messages[0].content" is empty'),
    ("chat", {"messages": [USER, {"role": "tool", "content": "x"}, ASSISTANT]},
     '"messages[1]" is a tool message without a preceding assistant tool call'),
    ("chat", {"messages": [USER, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]},
     '"messages[1].tool_calls[0].function.arguments" is not valid JSON '
     "(Expecting property name enclosed in double quotes at column 2)"),
    ("chat", {"messages": [USER, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
     '"messages[1].tool_calls[0].function.arguments" must hold a JSON object, got list'),
    ("chat", {"messages": [USER, {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "arguments": "{}"}}]}]}, 'missing field "messages[1].tool_calls[0].function.name"'),
    ("chat", {"messages": [USER, {"role": "assistant", "tool_calls": [
        {"id": "a", "function": {"name": "f", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "b", "content": "x"}, ASSISTANT]},
     '"messages[2].tool_call_id" "b" matches no preceding tool call (known: a)'),
    ("chat", {"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "x"}]},
     'unknown role "robot" in "conversations[1].from" (expected one of: human, user, gpt, assistant, system, '
     "tool, observation, function_response, function_call)"),
    ("chat", {"conversations": [{"from": "human", "value": 1}, {"from": "gpt", "value": "x"}]},
     '"conversations[0].value" must be a string, got int'),
    ("chat", {"messages": [USER, {**ASSISTANT, "weight": 0.5}]}, '"messages[1].weight" must be 0 (not trained) or 1, got 0.5'),
    ("chat", {"messages": [USER, {**ASSISTANT, "weight": 0}]}, "every assistant message has weight 0 (nothing to train)"),
]


@pytest.mark.parametrize("fmt,line,reason", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_record_reports_file_line_and_reason(tmp_path, fmt, line, reason):
    good = {"text": {"text": "ok"}, "classification": {"text": "ok", "label": "x"},
            "instruction": {"instruction": "i", "output": "o"}, "chat": {"messages": [USER, ASSISTANT]}}[fmt]
    path = write(tmp_path, "d.jsonl", [good, "", line, good])
    assert problems(path, fmt) == [f"{path}:3: {reason}"]


def test_all_records_are_validated_and_more_than_20_are_summarised(tmp_path):
    path = write(tmp_path, "many.jsonl", [{"text": "ok", "label": i} for i in range(25)] + [
        {"text": "ok", "label": "fine"}])
    with pytest.raises(DataError) as err:
        read_records(path, "classification")
    assert len(err.value.problems) == 25 and err.value.total == 25
    lines = str(err.value).splitlines()
    assert lines[:20] == [f'{path}:{n}: "label" must be a string, got int' for n in range(1, 21)]
    assert lines[20:] == ["... and 5 more problem(s)"]


def test_missing_file(tmp_path):
    with pytest.raises(AgentmillError, match="nope.jsonl: no such file"):
        read_records(tmp_path / "nope.jsonl", "chat")


def test_unknown_format_suggests(tmp_path):
    path = write(tmp_path, "x.jsonl", [{"text": "a"}])
    with pytest.raises(AgentmillError) as err:
        read_records(path, "clasification")
    assert str(err.value) == (f"{path}: unknown data format 'clasification'; did you mean 'classification'? "
                              f"(known: {', '.join(FORMATS)})")


@pytest.mark.parametrize("name,content,fmt", [("e.jsonl", "\n\n", "chat"), ("e.txt", "\n  \n", "text"),
                                              ("e.jsonl", "", "instruction")])
def test_empty_dataset(tmp_path, name, content, fmt):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(AgentmillError) as err:
        read_records(path, fmt)
    assert str(err.value) == f"{path}: no records (empty dataset)"


def test_non_utf8_names_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    with pytest.raises(AgentmillError, match=r"bad.jsonl:2: not UTF-8 text"):
        read_records(path, "text")
