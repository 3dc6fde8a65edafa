"""Slurm through Hydra's own submitit launcher plugin (`pip install -e '.[slurm]'`): it composes with the
project's config, and replaces a hardware option's launcher. Skipped where the plugin is not installed."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed (pip install -e '.[slurm]')",
)


def run_py(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("hardware", ["cpu", "gpu", "gpu8", "ascend8"])
def test_submitit_slurm_composes_with_every_hardware_option(hardware: str) -> None:
    done = run_py(
        f"hardware={hardware}",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=npu",
        "hydra.launcher.timeout_min=600",
        "hydra.launcher.gpus_per_node=1",
        "--cfg",
        "hydra",
    )
    assert done.returncode == 0, done.stderr
    launcher = yaml.safe_load(done.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher["partition"], launcher["timeout_min"], launcher["gpus_per_node"]) == ("npu", 600, 1)


@pytest.mark.slow
def test_a_training_job_runs_through_submitit_local(tmp_path: Path) -> None:
    """submitit_local: the same plugin, jobs as local processes instead of Slurm jobs."""
    out = tmp_path / "sweep"
    done = run_py(
        "-m",
        "hydra/launcher=submitit_local",
        "model.width=8",
        "train.epochs=1",
        f"hydra.sweep.dir={out}",
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((out / "0" / "summary.json").read_text())
    assert summary["world_size"] == 1 and summary["epochs"] == 1
