"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random model with its vocabulary.

AGENTMILL_HOME is left alone: the embedded GGUF is converted once per machine into the
default cache (~/.cache/agentmill) and reused by every later test session.
"""

import pytest

from agentmill.model.load import load_tokenizer, tiny_model


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny(tokenizer):
    return tiny_model(tokenizer).eval()
