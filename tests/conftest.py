"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random model with its vocabulary.

AGENTMILL_HOME is left alone: the embedded GGUF is converted once per machine into the
default cache (~/.cache/agentmill) and reused by every later test session.
"""

import os

# Tests never reach a model hub: a hub id that is not cached fails at once instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from agentmill.model.load import load_tokenizer, tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny(tokenizer):
    return tiny_model(tokenizer).eval()


@pytest.fixture(autouse=True)
def _fresh_mixed_precision():
    """accelerate's mixed-precision state is process-wide: a pipeline run earlier in the same
    worker (bf16 where that is fast) must not decide the precision of the next test."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()


@pytest.fixture
def script(monkeypatch):
    """Scripted model for the agent: each generation returns the next output of script["outputs"]
    ("done" once they run out) and records the prompt messages in script["prompts"]."""
    import copy

    import agentmill.agent.agent as agent_mod

    state = {"outputs": [], "prompts": []}

    def fake_stream(model, tokenizer, messages, max_new_tokens=256, tools=None, **kw):
        state["prompts"].append((copy.deepcopy(messages), tools))
        out = state["outputs"].pop(0) if state["outputs"] else "done"
        yield from (out[i:i + 7] for i in range(0, len(out), 7))

    monkeypatch.setattr(agent_mod, "generate_stream", fake_stream)
    return state
