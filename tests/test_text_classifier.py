"""The embedding classifier behind the router: fits, predicts, round-trips without pickle."""

import pytest
import torch

from agentmill.errors import AgentmillError
from agentmill.model.text_classifier import EmbeddingClassifier

TRAIN = [("What is my account balance?", "bank"), ("Check my savings account please", "bank"),
         ("How do I reset my card PIN?", "bank"), ("Is the branch open on Saturday?", "bank"),
         ("Explain photosynthesis to me", "school"), ("What is the capital of France?", "school"),
         ("Help me with my algebra homework", "school"), ("How do plants grow?", "school")]


@pytest.fixture(scope="module")
def fitted():
    texts, labels = zip(*TRAIN)
    return EmbeddingClassifier.fit(list(texts), list(labels))


def test_it_separates_unseen_messages(fitted):
    assert fitted.labels == ["bank", "school"]
    assert fitted.predict(["How much money is in my checking account?", "Teach me about volcanoes"]) == [
        "bank", "school"]
    lp = fitted.log_probs(["What is my balance?"])
    assert lp.shape == (1, 2) and torch.allclose(lp.exp().sum(-1), torch.ones(1))


def test_save_and_load_give_the_same_scores(fitted, tmp_path):
    fitted.save(tmp_path / "router")
    assert sorted(p.name for p in (tmp_path / "router").iterdir()) == ["classifier.json", "classifier.safetensors"]
    again = EmbeddingClassifier.load(tmp_path / "router")
    assert again.labels == fitted.labels
    assert torch.equal(again.log_probs(["hello"]), fitted.log_probs(["hello"]))


def test_bad_input_is_a_clear_error(fitted, tmp_path):
    with pytest.raises(AgentmillError, match="labels outside"):
        EmbeddingClassifier.fit(["a", "b"], ["x", "y"], names=["x"])
    with pytest.raises(AgentmillError, match="at least two labels"):
        EmbeddingClassifier.fit(["a", "b"], ["x", "x"])
    with pytest.raises(AgentmillError, match="no text classifier here"):
        EmbeddingClassifier.load(tmp_path)
    fitted.save(tmp_path / "r")
    (tmp_path / "r" / "classifier.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(AgentmillError, match="damaged text classifier"):
        EmbeddingClassifier.load(tmp_path / "r")
