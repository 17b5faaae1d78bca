"""The cache under AGENTMILL_HOME is shared by every process on the machine (`make test` runs two
workers; users run `serve` beside `train`): two writers of the same entry never break each other."""

import io
import json
import multiprocessing
import shutil
import subprocess
import tarfile
from pathlib import Path

from agentmill.export import gguf
from agentmill.paths import write_json_atomic


def _write_many(path: str, worker: int) -> None:
    for i in range(300):
        write_json_atomic(Path(path), {"worker": worker, "i": i, "pad": "x" * 2000})


def test_two_processes_writing_one_file_never_collide(tmp_path):
    path = tmp_path / "probe.json"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(str(path), w)) for w in (0, 1)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0]
    assert json.loads(path.read_text())["i"] == 299  # whole, from whichever wrote last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.json"]  # no temporary file left


def _fake_sdist(monkeypatch):
    """`pip download` of the llama-cpp-python sdist, answered with a small archive."""
    def fake_run(command, **kw):
        folder = Path(command[command.index("-d") + 1])
        prefix = f"llama_cpp_python-{gguf.LLAMA_CPP_VERSION}/vendor/llama.cpp/"
        with tarfile.open(folder / f"llama_cpp_python-{gguf.LLAMA_CPP_VERSION}.tar.gz", "w:gz") as archive:
            for name in ("convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py", "README.md"):
                data = f"# {name}\n".encode()
                info = tarfile.TarInfo(prefix + name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return subprocess.CompletedProcess(command, 0, "", "")
    monkeypatch.setattr(gguf.subprocess, "run", fake_run)


def test_the_converter_is_fetched_once_and_a_second_fetcher_keeps_the_first(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path))
    monkeypatch.delenv("AGENTMILL_LLAMA_CPP", raising=False)
    _fake_sdist(monkeypatch)
    extract = gguf._extract_converter

    def another_process_finishes_first(archive, staging):
        extract(archive, staging)
        winner = tmp_path / "llama.cpp" / gguf.LLAMA_CPP_VERSION
        winner.mkdir(parents=True)
        (winner / "convert_hf_to_gguf.py").write_text("# the other process's copy\n")

    monkeypatch.setattr(gguf, "_extract_converter", another_process_finishes_first)
    folder = gguf.converter_dir()
    assert (folder / "convert_hf_to_gguf.py").read_text() == "# the other process's copy\n"
    assert [p.name for p in folder.parent.iterdir()] == [gguf.LLAMA_CPP_VERSION]  # no staging folder left

    monkeypatch.setattr(gguf, "_extract_converter", extract)
    shutil.rmtree(folder)
    fetched = gguf.converter_dir()  # alone: only the converter's members, nothing else of the sdist
    assert sorted(str(p.relative_to(fetched)) for p in fetched.rglob("*") if p.is_file()) == \
        ["convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
