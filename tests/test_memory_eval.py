"""Multi-turn memory evaluation: which records need an earlier turn, and the recall score."""

import agentmill.eval.memory as memory
from agentmill.data.formats import Record
from agentmill.eval.memory import earlier_facts, evaluate_memory


def chat(*turns):
    messages = []
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages


def test_earlier_facts_are_the_last_answers_facts_given_only_before():
    assert earlier_facts(chat(("Hi, I'm Dana from Kansas City.", "Hello, Dana!"),
                              ("What are your hours?", "9 to 5."),
                              ("Where do I live?", "You live in Kansas City."))) == ["Kansas", "City"]
    assert earlier_facts(chat(("I want a loan of $9,000.", "Sure."),
                              ("How much did I ask for?", "You want a loan of $9,000."))) == ["$9,000"]
    # the fact is in the last question itself, or in no user turn, or there is one turn only
    assert earlier_facts(chat(("Hi, I'm Dana.", "Hello!"), ("Is Dana a nice name?", "Dana is nice."))) == []
    assert earlier_facts(chat(("Hi.", "Hello!"), ("Hours?", "Open 9 to 5 in Boston."))) == []
    assert earlier_facts(chat(("Hi, I'm Dana.", "Your name is Dana."))) == []


def test_evaluate_memory_scores_answers_that_state_every_fact(monkeypatch):
    records = [Record(source=f"f:{i}", messages=m) for i, m in enumerate([
        chat(("Hi, I'm Dana.", "Hello!"), ("What is my name?", "Your name is Dana.")),
        chat(("I'm Lucas from Austin.", "Hi!"), ("Where do I live?", "You live in Austin.")),
        chat(("Hi.", "Hello!"), ("Hours?", "9 to 5.")),  # not a memory record
    ])]
    seen = {}

    def fake_generate(model, tokenizer, prompts, **kwargs):
        seen["prompts"] = prompts
        return ["Your name is Dana.", "You live in Boston."]

    monkeypatch.setattr(memory, "generate_batch", fake_generate)
    monkeypatch.setattr(memory, "answer_budget", lambda tokenizer, golds: 8)
    assert evaluate_memory(None, None, records) == {"memory_recall": 0.5, "memory_records": 2.0}
    assert [p[-1]["content"] for p in seen["prompts"]] == ["What is my name?", "Where do I live?"]
    assert evaluate_memory(None, None, records[2:]) == {}
