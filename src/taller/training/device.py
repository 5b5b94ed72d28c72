"""Where training runs: the device (cuda, then mps, then cpu) and whether it computes in bfloat16."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from taller.errors import TallerError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TallerError("--device cuda: no hay ninguna GPU CUDA disponible; usa --device cpu o auto.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TallerError("--device mps: este equipo no tiene MPS (Apple); usa --device cpu o auto.")
    return torch.device(name)


def autocast_for(device: torch.device, dtype: str):
    """bf16 autocast on CUDA by default; on CPU only when asked (at small widths the casts cost more than they save)."""
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()


def available_memory(device: torch.device) -> int | None:
    """Bytes a training on `device` can still take: the GPU's free memory on CUDA, else what the kernel calls
    MemAvailable in /proc/meminfo (psutil is not a dependency); None where it cannot be known (e.g. macOS)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def processes_sharing_memory(device: torch.device, world: int) -> int:
    """How many training processes share the memory measured above: all ranks on CPU (one machine), one per GPU."""
    return 1 if device.type == "cuda" else world
