"""What this machine is and which precision is fast on it.

`precision: auto` (the default everywhere) picks, per device, the dtype that is fast *there*:
bf16 on a CUDA GPU with bf16 support and on CPUs with native bf16 matmuls (AMX or
AVX-512-BF16), fp32 elsewhere. The CPU flags can be wrong (a hypervisor that hides AMX, a
torch build without the kernels), so on a CPU that claims native bf16 a short matmul probe
confirms it; the probe's result is cached per machine (CPU model, flags, threads, torch, and
the kernel level torch and oneDNN run at).

On an AVX2-only CPU bf16 runs through emulation: measured 1.0 GFLOP/s against 168 in fp32
(AMD EPYC, 2 cores, torch 2.13) — an explicit `precision: bf16` there still runs, with one
warning that gives the measured slowdown and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from agentmill.paths import home, write_json_atomic

# CPU flags that matter for our kernels, in the order `agentmill env` prints them
FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# bf16 must beat fp32 by this factor in the probe to be called fast (autocast adds casts)
PROBE_MARGIN = 1.2
PROBE_VERSION = 1


@dataclass(frozen=True)
class Precision:
    """The precision a run uses on one device, and why."""

    name: str  # "bf16" or "fp32"
    requested: str  # what the recipe asked for: "auto", "bf16" or "fp32"
    reason: str
    warning: str | None = None  # set when the request is slow here (explicit bf16 without native bf16)

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.name == "bf16" else torch.float32

    @property
    def accelerate(self) -> str:
        """accelerate's `mixed_precision` value."""
        return "bf16" if self.name == "bf16" else "no"


# ------------------------------------------------------------------ the CPU


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first value of each /proc/cpuinfo field ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    return frozenset(_cpuinfo().get("flags", "").split())


def cpu_claims_native_bf16() -> bool:
    """The capability check: a CPU flag for bf16 matmuls and a torch that has the kernels."""
    flags = cpu_flags()
    has_flag = any(f in flags for f in NATIVE_BF16_FLAGS)
    if not flags:  # no /proc/cpuinfo (macOS, ...): trust oneDNN's own check, the probe decides
        has_flag = True
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    return has_flag and onednn


def threads() -> int:
    return torch.get_num_threads()


# ------------------------------------------------------------------ the probe


def _repeat_for(seconds: float, fn, sync=lambda: None) -> tuple[int, float]:
    """Run `fn()` once to warm up (kernel selection, first-touch allocation), then until `seconds`
    have passed; (runs counted, seconds elapsed)."""
    fn()
    sync()
    count, start = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count, elapsed


def matmul_gflops(dtype: torch.dtype, device: str = "cpu", n: int = 512, seconds: float = 0.25) -> float:
    """Measured GFLOP/s of an n x n matmul in `dtype`, repeated for about `seconds`."""
    # a generator of its own: the probe runs only on a machine's first call, and drawing from
    # torch's global generator there would make that first training run differ from the rest
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    count, elapsed = _repeat_for(seconds, lambda: a @ b, sync)
    return 2 * n**3 * count / elapsed / 1e9


def _probe_key() -> str:
    # torch's kernel level and oneDNN's ISA cap count too: ATEN_CPU_CAPABILITY=avx2 and
    # ONEDNN_MAX_CPU_ISA=AVX2 make an AMX machine run (and measure) like an AVX2-only one
    parts = [cpu_model(), " ".join(sorted(f for f in cpu_flags() if f in FLAGS)), str(threads()),
             torch.__version__, str(PROBE_VERSION), torch.backends.cpu.get_cpu_capability(),
             os.environ.get("ONEDNN_MAX_CPU_ISA", ""), os.environ.get("MKL_ENABLE_INSTRUCTIONS", "")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def probe_path() -> Path:
    return home() / "hardware" / f"probe-{_probe_key()}.json"


_probe_memo: dict | None = None


def cpu_probe(refresh: bool = False) -> dict:
    """fp32 and bf16 matmul GFLOP/s on this CPU: measured once per machine, then read from the cache."""
    global _probe_memo
    if _probe_memo is not None and not refresh:
        return _probe_memo
    path = probe_path()
    if not refresh and path.exists():
        try:
            _probe_memo = json.loads(path.read_text())
            return _probe_memo
        except (OSError, ValueError):
            pass  # a damaged cache is measured again
    fp32 = matmul_gflops(torch.float32)
    # emulated bf16 may run at ~1 GFLOP/s: a smaller matrix keeps the probe near a second
    bf16 = matmul_gflops(torch.bfloat16, n=512 if cpu_claims_native_bf16() else 128)
    _probe_memo = {"cpu": cpu_model(), "threads": threads(), "torch": torch.__version__,
                   "fp32_gflops": round(fp32, 1), "bf16_gflops": round(bf16, 1),
                   "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, _probe_memo)
    except OSError:
        pass  # a read-only home: measure again next time
    return _probe_memo


# ------------------------------------------------------------------ the choice


def _device_type(device) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device).type


def choose_precision(requested: str = "auto", device=None) -> Precision:
    """The precision to use for `requested` ("auto", "bf16", "fp32") on `device` (default: ours)."""
    if requested not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {requested!r}")
    kind = _device_type(device)
    if requested == "fp32":
        return Precision("fp32", requested, "asked for")
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", requested, f"{torch.cuda.get_device_name()} supports bf16")
        if requested == "bf16":
            return Precision("bf16", requested, "asked for", warning=(
                f"precision bf16 was asked for, but {torch.cuda.get_device_name()} has no native bf16: "
                "it runs slowly; set train.precision: auto (or fp32) to use fp32 here"))
        return Precision("fp32", requested, f"{torch.cuda.get_device_name()} has no native bf16")
    if kind != "cpu":
        return Precision("bf16" if requested == "bf16" else "fp32", requested, f"{kind}: no probe")
    native = cpu_claims_native_bf16()
    if requested == "auto" and not native:
        return Precision("fp32", requested, "the CPU has no native bf16 (no AMX / AVX-512-BF16)")
    probe = cpu_probe()
    ratio = probe["bf16_gflops"] / max(probe["fp32_gflops"], 1e-9)
    measured = (f"bf16 {probe['bf16_gflops']:,.0f} vs fp32 {probe['fp32_gflops']:,.0f} GFLOP/s "
                f"measured on {probe['cpu']}")
    fast = native and ratio >= PROBE_MARGIN
    if requested == "auto":
        return Precision("bf16" if fast else "fp32", requested, measured)
    if fast:
        return Precision("bf16", requested, measured)
    return Precision("bf16", requested, measured, warning=(
        f"precision bf16 was asked for, but this CPU has no native bf16 matmuls: {measured}, "
        f"{1 / max(ratio, 1e-9):,.0f}x slower than fp32. Set `precision: auto` (or fp32) in the recipe's "
        "train section, or pass train.precision=auto"))


@lru_cache(maxsize=1)
def _omp_set_num_threads():
    """torch's OpenMP runtime's `omp_set_num_threads` (None where there is none to find)."""
    import ctypes

    for name in ("libgomp.so.1", "libiomp5.so"):
        path = Path(torch.__file__).parent / "lib" / name
        if path.exists():
            try:
                return ctypes.CDLL(str(path)).omp_set_num_threads
            except (OSError, AttributeError):
                return None
    return None


def single_threaded_here() -> None:
    """Run torch on one thread in the calling thread, unless it is the main thread.

    For torch work beside the model's thread (e.g. knowledge embeddings in a request thread): a
    second OpenMP team makes libgomp stop spinning its workers, which halves the model thread's
    speed for as long as that thread lives (serve/engine.py). Only this thread's OpenMP setting
    changes (`omp_set_num_threads` is per thread; `torch.set_num_threads` also sets MKL's, for all)."""
    import threading

    setter = _omp_set_num_threads()
    if setter is not None and threading.current_thread() is not threading.main_thread():
        setter(1)


@lru_cache(maxsize=1)
def _libc():
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def trim_heap() -> None:
    """Hand the heap's free pages back to the OS (glibc `malloc_trim`; elsewhere nothing).

    A training row's activations are freed after its backward, but glibc keeps the pages, and
    rows of other lengths fragment them: measured on the bench (bench/train_compare.py, AMX
    Xeon), peak RSS 6.2 GB without, 4.8 GB with a trim after every row's backward (5.4 GB after
    every step), for about 5 % of the tokens/s (the pages are faulted in again); a 128 KB mmap
    threshold instead: 4.1 GB, but half the speed."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


# int8 weights must beat dense ones by this factor at decode shapes to be used (they round the weights)
INT8_MARGIN = 1.3


def gemv_microseconds(dtype: torch.dtype, int8: bool, seconds: float = 0.15) -> float:
    """Microseconds of one decode-shaped product (a token [1, 576] times the 4 weights of a small
    model's layer, 6 layers cycled so they come from memory, not cache), dense `dtype` or int8."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(960, 576), (576, 576), (3072, 576), (576, 1536)] * 6
    weights = [torch.randn(shape, generator=gen).to(dtype) for shape in shapes]
    if int8:
        packed = [(torch.randint(-127, 128, w.shape, dtype=torch.int8, generator=gen),
                   torch.rand(w.shape[0], generator=gen).to(dtype)) for w in weights]
        run = [lambda x, p=p: torch.ops.aten._weight_int8pack_mm(x, *p) for p in packed]
    else:
        run = [lambda x, w=w: torch.nn.functional.linear(x, w) for w in weights]
    inputs = {n: torch.randn(1, n, generator=gen).to(dtype) for n in (576, 1536)}
    products = list(zip(run, [inputs[s[1]] for s in shapes]))

    def layers():
        for fn, x in products:
            fn(x)

    count, elapsed = _repeat_for(seconds, layers)
    return elapsed / (count * len(products)) * 1e6


def decode_weights(dtype: torch.dtype, device=None) -> tuple[str, str]:
    """("int8" or "dense", why): the frozen weights decoding reads, on `device`, for activations in `dtype`.

    Decoding one token per row reads every weight once per token, so int8 weights can halve the
    time, where the kernel (`_weight_int8pack_mm`) has a fast path: measured once per machine and
    dtype, cached beside the matmul probe. torch 2.13 vectorises it for bf16 on AVX-512; fp32
    inputs run a scalar loop (measured 4x slower than dense fp32 on an AMX Xeon)."""
    if _device_type(device) != "cpu":
        return "dense", f"{_device_type(device)}: dense weights"
    if not hasattr(torch.ops.aten, "_weight_int8pack_mm"):
        return "dense", f"torch {torch.__version__} has no int8 weight-only kernel"
    name = "bf16" if dtype == torch.bfloat16 else "fp32"
    probe = cpu_probe()
    key = f"decode_us_{name}"
    if key not in probe:
        probe[key] = {"dense": round(gemv_microseconds(dtype, False), 1),
                      "int8": round(gemv_microseconds(dtype, True), 1)}
        try:
            write_json_atomic(probe_path(), probe)
        except OSError:
            pass
    dense, int8 = probe[key]["dense"], probe[key]["int8"]
    measured = f"{name} decode product {dense:.0f} us dense vs {int8:.0f} us int8, measured on {probe['cpu']}"
    return ("int8" if dense >= INT8_MARGIN * int8 else "dense"), measured


_cuda_peaks: dict[str, float] = {}


def peak_gflops(precision: str, device=None) -> float:
    """The measured matmul GFLOP/s of `precision` ("bf16"/"fp32") on `device`: the MFU denominator."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if _device_type(device) == "cuda":
        if precision not in _cuda_peaks:
            _cuda_peaks[precision] = matmul_gflops(dtype, "cuda", n=4096)
        return _cuda_peaks[precision]
    return cpu_probe()["bf16_gflops" if precision == "bf16" else "fp32_gflops"]


_warned: set[str] = set()


def announce(precision: Precision, stream=None) -> Precision:
    """Print a precision's warning once per process (to stderr); returns the precision."""
    if precision.warning and precision.warning not in _warned:
        _warned.add(precision.warning)
        print(f"warning: {precision.warning}", file=stream or sys.stderr)
    return precision


def environment() -> dict:
    """What a bug report needs (`agentmill env`): versions, CPU, threads, GPU, measured speeds, precision."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    packages = ["agentmill", "torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers",
                "trl", "llama-cpp-python"]
    flags = cpu_flags()
    info = {
        "platform": platform.platform(), "python": sys.version.split()[0],
        "versions": {p: version(p) for p in packages},
        "cpu": {"model": cpu_model(), "flags": [f for f in FLAGS if f in flags],
                "torch_capability": torch.backends.cpu.get_cpu_capability(),
                "onednn_bf16": cpu_claims_native_bf16(),
                "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                "torch_threads": threads()},
        "gpu": None,
        "probe": cpu_probe(refresh=True),
        "precision": {"cpu": asdict(choose_precision("auto", "cpu"))},
        "agentmill_home": str(home()),
    }
    if torch.cuda.is_available():
        info["gpu"] = {"name": torch.cuda.get_device_name(), "count": torch.cuda.device_count(),
                       "cuda": torch.version.cuda, "bf16": torch.cuda.is_bf16_supported(),
                       "fp32_gflops": round(matmul_gflops(torch.float32, "cuda", n=4096), 0),
                       "bf16_gflops": round(matmul_gflops(torch.bfloat16, "cuda", n=4096), 0)}
        info["precision"]["cuda"] = asdict(choose_precision("auto", "cuda"))
    return info
