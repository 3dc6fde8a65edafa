"""Shared test setup: the same oneDNN ISA cap as hardware=cpu, and `run_py`, run.py as a user runs it."""

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from birealnet_exp.engine.distributed import cap_cpu_isa

cap_cpu_isa("AVX2")  # as conf/hardware/cpu.yaml does for a run; tests call models directly too

REPO = Path(__file__).resolve().parents[1]


def _run_py(
    *args: str, returncode: int | None = 0, timeout: float = 600, python_flags: Sequence[str] = ()
) -> subprocess.CompletedProcess:
    """`python [python_flags] run.py args...` in the repository, output captured; checks the exit status
    unless `returncode` is None."""
    proc = subprocess.run(
        [sys.executable, *python_flags, "run.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if returncode is not None:
        assert proc.returncode == returncode, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="session")
def run_py() -> Callable[..., subprocess.CompletedProcess]:
    """Run run.py in a subprocess: `run_py("train.epochs=1", returncode=0)`."""
    return _run_py
