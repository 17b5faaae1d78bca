"""precision: auto picks the dtype that is fast on the machine; an explicit slow bf16 warns once."""

import json

import pytest
import torch

from agentmill import hardware
from agentmill.hardware import announce, choose_precision, cpu_probe
from agentmill.model.run import run_precision


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A pretend CPU: `machine(native=..., fp32=..., bf16=...)`; counts the probe's matmuls."""
    monkeypatch.setenv("AGENTMILL_HOME", str(tmp_path))
    monkeypatch.setattr(hardware, "_probe_memo", None)
    calls = []

    def set_up(native: bool, fp32: float = 170.0, bf16: float = 1.0):
        monkeypatch.setattr(hardware, "cpu_claims_native_bf16", lambda: native)

        def gflops(dtype, device="cpu", n=512, seconds=0.25):
            calls.append(dtype)
            return bf16 if dtype == torch.bfloat16 else fp32

        monkeypatch.setattr(hardware, "matmul_gflops", gflops)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        return calls

    return set_up


def test_auto_is_fp32_on_a_cpu_without_native_bf16_and_measures_nothing(machine):
    calls = machine(native=False)
    p = choose_precision("auto")
    assert (p.name, p.dtype, p.accelerate, p.warning) == ("fp32", torch.float32, "no", None)
    assert "no native bf16" in p.reason
    assert calls == []  # the capability check alone decides: no probe on an AVX2 machine


def test_auto_is_bf16_where_the_probe_confirms_native_bf16(machine):
    machine(native=True, fp32=300.0, bf16=1400.0)
    p = choose_precision("auto")
    assert (p.name, p.dtype, p.accelerate, p.warning) == ("bf16", torch.bfloat16, "bf16", None)
    assert "1,400" in p.reason and "300" in p.reason


def test_auto_believes_the_probe_over_the_flags(machine):
    # flags claim bf16, but it measures no faster than fp32 (e.g. a hypervisor hides AMX)
    machine(native=True, fp32=300.0, bf16=310.0)
    assert choose_precision("auto").name == "fp32"


def test_explicit_bf16_without_native_bf16_runs_with_one_clear_warning(machine, capsys):
    machine(native=False, fp32=168.0, bf16=1.0)
    p = choose_precision("bf16")
    assert p.name == "bf16"
    assert "168x slower than fp32" in p.warning
    assert "precision: auto" in p.warning and "train.precision=auto" in p.warning
    announce(p)
    announce(choose_precision("bf16"))
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "168x slower" in err


def test_explicit_bf16_on_native_hardware_and_fp32_never_warn(machine):
    machine(native=True, fp32=300.0, bf16=1400.0)
    assert choose_precision("bf16").warning is None
    assert choose_precision("fp32").name == "fp32"
    with pytest.raises(ValueError):
        choose_precision("fp16")


def test_the_probe_is_measured_once_per_machine_and_cached_on_disk(machine, monkeypatch, tmp_path):
    calls = machine(native=True, fp32=300.0, bf16=1400.0)
    first = cpu_probe()
    assert len(calls) == 2
    cached = json.loads(hardware.probe_path().read_text())
    assert cached["fp32_gflops"] == 300.0 and cached["bf16_gflops"] == 1400.0
    assert hardware.probe_path().is_relative_to(tmp_path)
    monkeypatch.setattr(hardware, "_probe_memo", None)  # a new process reads the file
    assert cpu_probe() == first and len(calls) == 2
    cpu_probe(refresh=True)
    assert len(calls) == 4


def test_a_damaged_probe_cache_is_measured_again(machine, monkeypatch):
    calls = machine(native=True, fp32=300.0, bf16=1400.0)
    path = hardware.probe_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cpu_probe()["bf16_gflops"] == 1400.0 and len(calls) == 2


def test_a_trained_run_is_run_in_the_precision_chosen_where_it_runs(machine):
    # trained with auto on an AMX machine (bf16), then used on an AVX2 one: fp32 there
    machine(native=False)
    assert run_precision({"precision": "bf16", "precision_requested": "auto"}).name == "fp32"
    assert run_precision({"precision": "bf16"}).name == "fp32"  # older manifests: bf16 came from auto
    assert run_precision({"precision": "no"}).name == "fp32"
    assert run_precision({"precision": "bf16", "precision_requested": "bf16"}).name == "bf16"


def test_this_machine_matmul_probe_measures_real_speed():
    # the real measurement, without mocks: both dtypes run and give a positive, finite rate
    fp32 = hardware.matmul_gflops(torch.float32, n=128, seconds=0.05)
    bf16 = hardware.matmul_gflops(torch.bfloat16, n=64, seconds=0.05)
    assert 0.01 < fp32 < 1e6 and 0.001 < bf16 < 1e6


def test_the_probes_leave_torchs_global_generator_alone():
    # a machine's first run measures the probes; they must not change what that run draws
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    hardware.matmul_gflops(torch.float32, n=64, seconds=0.01)
    hardware.gemv_microseconds(torch.float32, False, seconds=0.01)
    assert torch.equal(torch.rand(4), expected)


def test_decode_weights_are_int8_only_where_measured_faster_and_the_measure_is_cached(machine, monkeypatch):
    machine(native=True, fp32=300.0, bf16=1400.0)
    speeds = {(torch.bfloat16, False): 82.0, (torch.bfloat16, True): 31.0,  # AMX: int8 2.6x faster
              (torch.float32, False): 71.0, (torch.float32, True): 252.0}  # fp32 inputs: scalar int8 loop
    measured = []

    def gemv(dtype, int8, seconds=0.15):
        measured.append((dtype, int8))
        return speeds[dtype, int8]

    monkeypatch.setattr(hardware, "gemv_microseconds", gemv)
    assert hardware.decode_weights(torch.bfloat16)[0] == "int8"
    choice, why = hardware.decode_weights(torch.float32)
    assert choice == "dense" and "71 us dense vs 252 us int8" in why
    assert len(measured) == 4
    monkeypatch.setattr(hardware, "_probe_memo", None)  # a new process reads the cache
    assert hardware.decode_weights(torch.bfloat16)[0] == "int8" and len(measured) == 4
    cached = json.loads(hardware.probe_path().read_text())
    assert cached["decode_us_bf16"] == {"dense": 82.0, "int8": 31.0}
    speeds[torch.bfloat16, True] = 70.0  # not 1.3x faster: dense
    monkeypatch.setattr(hardware, "_probe_memo", None)
    hardware.probe_path().unlink()
    assert hardware.decode_weights(torch.bfloat16)[0] == "dense"
    assert hardware.decode_weights(torch.bfloat16, device="cuda")[0] == "dense"


def test_this_machine_int8_decode_product_runs():
    dense = hardware.gemv_microseconds(torch.float32, False, seconds=0.02)
    int8 = hardware.gemv_microseconds(torch.bfloat16, True, seconds=0.02)
    assert 0 < dense < 1e5 and 0 < int8 < 1e5


def test_side_threads_run_torch_single_threaded_and_the_main_thread_keeps_its_threads():
    import threading

    seen = {}

    def side():
        hardware.single_threaded_here()
        seen["side"] = torch.get_num_threads()

    before = torch.get_num_threads()
    hardware.single_threaded_here()  # the main thread: unchanged
    thread = threading.Thread(target=side)
    thread.start()
    thread.join()
    assert torch.get_num_threads() == before and seen["side"] == 1


def test_trim_heap_returns_freed_pages_to_the_os():
    import os

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    if hardware._libc() is None:
        pytest.skip("not glibc: trim_heap does nothing here")
    blocks = [torch.ones(16 * 1024) for _ in range(4000)]  # 64 KB each: heap, not mmap (256 MB)
    # every 16th block stays alive: the freed ones between them are holes glibc never returns
    # by itself (it only shrinks the heap's top), whatever the heap held before this test
    pins = blocks[::16]
    del blocks
    before = rss_mb()
    hardware.trim_heap()
    assert before - rss_mb() > 150, (before, rss_mb())
    del pins
