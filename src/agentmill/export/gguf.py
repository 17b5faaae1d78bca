"""`--to gguf`: each task's merged Hugging Face folder converted by llama.cpp's own converter
(`convert_hf_to_gguf.py`), never a home-made writer.

The converter ships in the `llama-cpp-python` sdist on PyPI (``vendor/llama.cpp``): the first
gguf export downloads that sdist with pip (a package registry, like any install) and keeps the
converter, its `conversion` package and its matching `gguf-py` under
``AGENTMILL_HOME/llama.cpp/VERSION``; ``AGENTMILL_LLAMA_CPP`` points at a llama.cpp checkout instead.
f16 and q8_0 come straight from the converter; q4_k_m is quantised from f16 by llama.cpp's
quantizer through llama-cpp-python (``bench/install_llama_cpp.sh`` builds it).
"""

from __future__ import annotations

import os
import shutil
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from agentmill.export.common import ExportError, RunInfo, staged_folder, write_manifest
from agentmill.paths import home

LLAMA_CPP_VERSION = "0.3.36"  # the llama-cpp-python release whose vendored llama.cpp converts
TYPES = ("f16", "q8_0", "q4_k_m")
_MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def converter_dir() -> Path:
    """A folder holding convert_hf_to_gguf.py, conversion/ and gguf-py/ (fetched once)."""
    own = os.environ.get("AGENTMILL_LLAMA_CPP")
    if own:
        folder = Path(own).expanduser()
        if not (folder / "convert_hf_to_gguf.py").is_file():
            raise ExportError(f"AGENTMILL_LLAMA_CPP={own}: no convert_hf_to_gguf.py there (point it at a llama.cpp "
                              f"checkout)")
        return folder
    folder = home() / "llama.cpp" / LLAMA_CPP_VERSION
    if (folder / "convert_hf_to_gguf.py").is_file():
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                              f"llama-cpp-python=={LLAMA_CPP_VERSION}", "-d", tmp], capture_output=True, text=True)
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if got.returncode or not archives:
            raise ExportError(f"cannot fetch llama.cpp's converter (the llama-cpp-python {LLAMA_CPP_VERSION} sdist "
                              f"from PyPI): {(got.stderr or got.stdout).strip().splitlines()[-1:] or 'no archive'}; "
                              f"or set AGENTMILL_LLAMA_CPP to a llama.cpp checkout")
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))  # one per process
        os.chmod(staging, 0o755)
        try:
            _extract_converter(archives[0], staging)
            staging.rename(folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (folder / "convert_hf_to_gguf.py").is_file():
                raise
            # another process fetched it first
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return folder


def _extract_converter(archive_path: Path, staging: Path) -> None:
    prefix = f"llama_cpp_python-{LLAMA_CPP_VERSION}/vendor/llama.cpp/"
    with tarfile.open(archive_path) as archive:
        for member in archive.getmembers():
            rel = member.name[len(prefix):] if member.name.startswith(prefix) else None
            if rel and ".." not in Path(rel).parts and (member.isfile() and any(rel == m or rel.startswith(m) for m in _MEMBERS)):
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    if not (staging / "convert_hf_to_gguf.py").is_file():
        raise ExportError(f"the llama-cpp-python {LLAMA_CPP_VERSION} sdist holds no convert_hf_to_gguf.py")


def check_type(outtype: str) -> None:
    if outtype not in TYPES:
        raise ExportError(f"--type {outtype!r}: choose one of {', '.join(TYPES)}")


def convert(hf_folder: Path, out_file: Path, outtype: str = "q8_0") -> Path:
    """`hf_folder` (a merged export) as one GGUF file of type `outtype`."""
    check_type(outtype)
    try:
        import sentencepiece  # noqa: F401 - the converter imports it for every Llama-family vocabulary
    except ImportError:
        raise ExportError("the GGUF converter needs sentencepiece: pip install sentencepiece") from None
    tools = converter_dir()
    first = out_file.with_suffix(".f16.tmp.gguf") if outtype == "q4_k_m" else out_file
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tools / "gguf-py"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(tools / "convert_hf_to_gguf.py"), str(hf_folder), "--outtype",
                           "f16" if outtype == "q4_k_m" else outtype, "--outfile", str(first)],
                          capture_output=True, text=True, env=env)
    if done.returncode or not first.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise ExportError(f"llama.cpp's convert_hf_to_gguf.py failed on {hf_folder}:\n{tail}")
    if outtype == "q4_k_m":
        try:
            quantize(first, out_file, "q4_k_m")
        finally:
            first.unlink(missing_ok=True)
    return out_file


def quantize(source: Path, out_file: Path, kind: str) -> None:
    """llama.cpp's quantizer (`llama_model_quantize`) through llama-cpp-python."""
    try:
        import llama_cpp
    except ImportError:
        raise ExportError(f"--type {kind} needs llama.cpp's quantizer from llama-cpp-python: build it once with "
                          f"`bench/install_llama_cpp.sh .venv/bin/python` (or use --type q8_0 / f16)") from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}[kind]
    params.nthread = len(os.sched_getaffinity(0))
    import ctypes

    if llama_cpp.llama_model_quantize(str(source).encode(), str(out_file).encode(), ctypes.byref(params)) != 0 or \
            not out_file.is_file():
        raise ExportError(f"llama.cpp could not quantize {source} to {kind}")


GGUF_README = """# {name} — GGUF exported from agentmill

Converted by llama.cpp's own `convert_hf_to_gguf.py` (llama-cpp-python {version}'s vendored llama.cpp)
from each task's merged Hugging Face export. Type: {outtype}.

{files}

The chat template inside each file is the task's tool-aware template (its system prompt as the
default; tools in Hermes-style `<tool_call>` blocks). With llama.cpp:

```sh
llama-server -m {example} --jinja            # OpenAI-compatible, tool calls parsed
python -m llama_cpp.server --model {example} # or llama-cpp-python's server
```

Each `TASK.json` holds the task's system prompt and tool schemas (pass them as `tools`).
If decoding a quantised file crashes on an Intel AMX CPU, that is llama.cpp's weight repacking
(ggml-org/llama.cpp#20824): run with `--no-repack`.
`export.json` lists every file with its SHA-256.
"""


def write_gguf_task(info: RunInfo, task: str, folder: Path, outtype: str, stem: str) -> tuple[Path, dict]:
    """`task` as FOLDER/STEM.gguf (through a temporary merged HF folder) and its card."""
    from agentmill.export.hf import write_hf_task

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        card = write_hf_task(info, task, Path(tmp), "fp32")
        path = convert(Path(tmp), folder / f"{stem}.gguf", outtype)
    return path, {**card, "gguf": path.name, "type": outtype}


def export_gguf(run_dir, out, task: str | None = None, outtype: str = "q8_0", force: bool = False,
                console=None) -> dict:
    """Every chat task (or `task`) as OUT/TASK-TYPE.gguf with OUT/TASK.json beside it."""
    check_type(outtype)
    info = RunInfo.read(run_dir)
    tasks = info.select(task)
    converter_dir()  # fetched before anything is written
    started = time.perf_counter()
    with staged_folder(Path(out), force) as work:
        files = []
        for name in tasks:
            path, card = write_gguf_task(info, name, work, outtype, f"{name}-{outtype}")
            (work / f"{name}.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
            files.append(f"- `{path.name}`: task {name}, {path.stat().st_size / 1e6:,.0f} MB")
            if console is not None:
                console.print(f"  {name}: {path.name} {path.stat().st_size / 1e6:,.0f} MB")
        (work / "README.md").write_text(GGUF_README.format(name=info.manifest.get("name", "run"), outtype=outtype,
                                                           version=LLAMA_CPP_VERSION, files="\n".join(files),
                                                           example=f"{tasks[0]}-{outtype}.gguf"))
        return write_manifest(work, "gguf", info, tasks, started, type=outtype,
                              converter=f"llama-cpp-python {LLAMA_CPP_VERSION} convert_hf_to_gguf.py")
