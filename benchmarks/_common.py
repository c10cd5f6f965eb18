"""Helpers every benchmark shares: the machine's description, a warning when the CPU is shared, CUDA sync."""

from __future__ import annotations

import os
import platform

import torch

__all__ = ["machine_info", "load_warning", "sync"]


def machine_info(device: torch.device) -> dict[str, str | int]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, str | int] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0,
        "load_avg": ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?",
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = str(torch.version.cuda)
    return info


def load_warning(info: dict[str, str | int]) -> str | None:
    """A note when other jobs keep more runnable threads than the machine has cores."""
    if not hasattr(os, "getloadavg") or os.getloadavg()[0] <= int(info["usable_cores"]):
        return None
    return (
        f"warning: load average {os.getloadavg()[0]:.1f} on {info['usable_cores']} cores: other jobs share the CPU, "
        "and multi-threaded small calls (batch 1) suffer most; rerun with --threads 1 or on an idle machine"
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
