"""Shared test setup: the same oneDNN ISA cap as hardware=cpu, and the repository root."""

from pathlib import Path

import pytest

from birealnet_exp.engine.distributed import cap_cpu_isa

cap_cpu_isa("AVX2")  # as conf/hardware/cpu.yaml does for a run; tests call models directly too

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO
