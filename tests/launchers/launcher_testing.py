"""Helpers of the launcher tests: small Hydra apps run as real processes, and process checks."""

import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import psutil

DEVICE_IPS = ["192.168.100.101", "192.168.101.101"]


def write_app(folder: Path, body: str, name: str = "app.py") -> Path:
    """A Hydra app whose task is `body` (the inside of `def task(cfg)`), no config file."""
    code = (
        "import os, sys, time, signal\nimport hydra\nfrom omegaconf import DictConfig\n\n\n"
        "@hydra.main(version_base=None, config_path=None)\ndef task(cfg: DictConfig):\n"
        + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
        + '\n\nif __name__ == "__main__":\n    task()\n'
    )
    path = folder / name
    path.write_text(code, encoding="utf-8")
    return path


def run_app(
    app: Path, args: Sequence[str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a Hydra app to its end; stdout and stderr together in `.stdout`."""
    return subprocess.run(
        [sys.executable, str(app), *args],
        cwd=cwd or app.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def rank_pids(job_dir: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted(job_dir.glob("rank_*/pid"))]


def alive(pids: Sequence[int]) -> list[int]:
    """Those of `pids` still running (zombies count as gone)."""
    left = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.Error:
            pass
    return left


def processes_mentioning(text: str) -> list[psutil.Process]:
    """Running processes whose command line mentions `text` (a job folder): none may outlive a job."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
                text in part for part in proc.info["cmdline"] or []
            ):
                found.append(proc)
        except psutil.Error:
            pass
    return found
