"""`agentmill env`: the machine's facts for a bug report, as `accelerate env` / `transformers env` print them."""

from __future__ import annotations

import json

from agentmill.hardware import environment


def print_environment(console, as_json: bool = False) -> dict:
    info = environment()
    if as_json:
        console.print_json(json.dumps(info))
        return info
    cpu, probe = info["cpu"], info["probe"]
    lines = [
        ("platform", info["platform"]),
        ("python", info["python"]),
        *[(name, v) for name, v in info["versions"].items()],
        ("CPU", cpu["model"]),
        ("CPU flags", " ".join(cpu["flags"]) or "(none of avx2/avx512/amx)"),
        ("torch CPU capability", f"{cpu['torch_capability']}; oneDNN bf16 {'yes' if cpu['onednn_bf16'] else 'no'}"),
        ("cores / torch threads", f"{cpu['cores']} / {cpu['torch_threads']}"),
        ("matmul fp32 / bf16", f"{probe['fp32_gflops']:,.0f} / {probe['bf16_gflops']:,.0f} GFLOP/s "
                               f"(512x512, measured now)"),
    ]
    gpu = info["gpu"]
    if gpu:
        lines += [("GPU", f"{gpu['count']} x {gpu['name']} (CUDA {gpu['cuda']}, bf16 {'yes' if gpu['bf16'] else 'no'})"),
                  ("GPU matmul fp32 / bf16", f"{gpu['fp32_gflops']:,.0f} / {gpu['bf16_gflops']:,.0f} GFLOP/s")]
    else:
        lines.append(("GPU", "none"))
    for device, p in info["precision"].items():
        lines.append((f"precision auto ({device})", f"{p['name']}: {p['reason']}"))
    lines.append(("AGENTMILL_HOME", info["agentmill_home"]))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        console.print(f"{key:<{width}}  {value}", highlight=False, soft_wrap=True)
    return info
