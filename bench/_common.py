"""Helpers shared by the benchmarks: append a dated section to BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import platform
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def append_section(title: str, command: str, table: str) -> None:
    """Append one measured table, with the command and machine that produced it, to BENCHMARKS.md."""
    import os

    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = f"\n## {title} ({stamp})\n\n`{command}` on {machine}\n\n{table}\n"
    if not BENCHMARKS.exists():
        BENCHMARKS.write_text("# Benchmarks\n\nMeasured figures; ratios from one run side by side count.\n")
    with open(BENCHMARKS, "a") as f:
        f.write(text)
    print(text)
