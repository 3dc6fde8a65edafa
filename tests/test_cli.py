"""run.py as a user calls it: config printing and Hydra's own messages for wrong input, fast."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_cfg_job_prints_the_composed_config_without_importing_mindspore():
    proc = run_py("-X", "importtime", "run.py", "model=birealnet34", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert "_target_: birealnet_exp.models.birealnet.birealnet34" in proc.stdout
    assert "width: 64" in proc.stdout and "num_classes: 10" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "mindspore" not in imported  # config composition stays light


def test_wrong_key_gets_hydras_message_not_our_traceback():
    proc = run_py("run.py", "optimizer.lrr=1")
    assert proc.returncode != 0
    assert "Could not override 'optimizer.lrr'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_group_option_lists_the_available_ones():
    proc = run_py("run.py", "model=birealnet99")
    assert proc.returncode != 0
    assert "Could not find 'model/birealnet99'" in proc.stderr and "birealnet34" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_badly_typed_value_is_rejected_by_the_schema():
    proc = run_py("run.py", "train.epochs=many", "task=train")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "train.epochs" in proc.stderr


def test_unknown_task_lists_the_tasks():
    proc = run_py("run.py", "task=dance")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "dance" in proc.stderr and "train" in proc.stderr and "eval" in proc.stderr
