"""Invariant: training, evaluation and chat render a conversation through the same function.

The prompt that generation and label scoring feed the model must be, token for token, the
prefix of the training example that precedes the trained assistant answer.
"""

from agentmill.data.formats import classification_messages
from agentmill.data.render import encode_chat, end_of_turn_id, render
from agentmill.model import generate as gen

CONVERSATION = [
    {"role": "system", "content": "You are Northwind Bank's assistant."},
    {"role": "user", "content": "Hi, I am Dana."},
    {"role": "assistant", "content": "Hello Dana! How can I help?"},
    {"role": "user", "content": "What is my name?"},
    {"role": "assistant", "content": "Your name is Dana."},
]


def _first_trained(example):
    return next(i for i, label in enumerate(example.labels) if label != -100)


def test_chat_prompt_is_the_training_prefix_of_the_last_answer(tokenizer):
    example = encode_chat(tokenizer, CONVERSATION, mask="last_turn")
    prompt = gen._prompt_ids(tokenizer, CONVERSATION[:-1])  # what chat/serve send to the model
    start = _first_trained(example)
    assert example.input_ids[:start] == prompt
    answer = tokenizer(CONVERSATION[-1]["content"], add_special_tokens=False)["input_ids"]
    assert example.input_ids[start:start + len(answer) + 1] == answer + [end_of_turn_id(tokenizer)]


def test_label_scoring_scores_exactly_the_trained_tokens(tokenizer, tiny, monkeypatch):
    labels = ["balance", "lost_card"]
    messages = classification_messages("I lost my card", labels)
    example = encode_chat(tokenizer, classification_messages("I lost my card", labels, "lost_card"))
    seen = []
    real = tiny.forward

    def spy(*args, **kwargs):
        seen.append((kwargs["input_ids"][0].tolist(), kwargs["position_ids"][0].tolist()))
        return real(*args, **kwargs)

    monkeypatch.setattr(tiny, "forward", spy)
    gen.score_continuations(tiny, tokenizer, messages, labels)
    (ids, positions), = seen  # one packed forward: the prompt once, then each candidate as a branch of it
    trained = [t for t, l in zip(example.input_ids, example.labels) if l != -100]
    prompt = _first_trained(example)
    assert ids[:prompt] == example.input_ids[:prompt]
    # the last candidate, 'lost_card': label + end-of-turn, the same ids the training example labels,
    # at the positions they have in the training example
    assert ids[-len(trained):] == trained
    assert positions[-len(trained):] == list(range(prompt, prompt + len(trained)))


def test_render_is_the_tokenizer_chat_template(tokenizer):
    plain = [m for m in CONVERSATION]
    assert render(tokenizer, plain) == tokenizer.apply_chat_template(plain, tokenize=False)
    assert render(tokenizer, plain[:-1], add_generation_prompt=True) == tokenizer.apply_chat_template(
        plain[:-1], tokenize=False, add_generation_prompt=True)
