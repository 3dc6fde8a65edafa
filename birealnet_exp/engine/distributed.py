"""Distributed context of one process: device, execution mode, rank and group size."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dist:
    """Where this process runs and which rank it is."""

    device_target: str = "CPU"
    device_id: int = 0
    rank: int = 0
    group_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes metrics, checkpoints, summaries and plots."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.group_size > 1


def cap_cpu_isa(isa: str | None) -> None:
    """Cap oneDNN's CPU ISA (ONEDNN_MAX_CPU_ISA) unless the environment already sets it.

    On this project's AVX-512 machines MindSpore's oneDNN picks a reference-speed convolution for its
    plain NCHW tensors; capped at AVX2 it picks the JIT kernels, about 10x faster (bench/cpu_isa.py).
    """
    if isa:
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", str(isa))


def setup(hardware: Any) -> Dist:
    """Set MindSpore's context from `cfg.hardware` and the environment a launcher left; return a Dist."""
    cap_cpu_isa(hardware.get("onednn_max_cpu_isa"))
    import mindspore as ms

    mode = {"graph": ms.GRAPH_MODE, "pynative": ms.PYNATIVE_MODE}[str(hardware.mode).lower()]
    device_target = str(hardware.device_target)
    device_id = int(os.environ.get("DEVICE_ID", hardware.get("device_id", 0) or 0))
    ms.set_context(mode=mode)
    ms.set_device(device_target, device_id) if device_target != "CPU" else ms.set_device("CPU")
    return Dist(device_target=device_target, device_id=device_id)
