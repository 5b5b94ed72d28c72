"""What the CPU offers, for every bench JSON line: its name, the instruction sets that decide matrix speed and
whether a bf16 product has a fast path (AMX, or AVX-512 with bf16 instructions) or falls back to a slow one.

    python bench/machine.py            → one JSON line
"""

import json
import os
import platform

import torch

ISA = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "neon", "sve")  # flags worth naming


def cpu_flags() -> tuple[str, set[str]]:
    """The CPU's model name and its flags, from /proc/cpuinfo (Linux); elsewhere the platform's name and no flags."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                    name = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags


def cpu_info() -> dict:
    """{"cpu", "isa", "torch_capability", "bf16_fast", "threads", "cores"}: what every bench line records."""
    name, flags = cpu_flags()
    isa = [f for f in ISA if f in flags]
    return {
        "cpu": name,
        "isa": isa,
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_fast": "amx_bf16" in flags or "avx512_bf16" in flags,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
    }


if __name__ == "__main__":
    print(json.dumps({"bench": "machine", **cpu_info()}))
