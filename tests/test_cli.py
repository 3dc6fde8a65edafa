"""run.py as a user calls it: config printing and Hydra's own messages for wrong input, fast."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cfg_job_prints_the_composed_config_without_importing_mindspore(run_py):
    proc = run_py("model=birealnet34", "--cfg", "job", python_flags=("-X", "importtime"), returncode=None)
    assert proc.returncode == 0, proc.stderr
    assert "_target_: birealnet_exp.models.birealnet.birealnet34" in proc.stdout
    assert "width: 64" in proc.stdout and "num_classes: 10" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "mindspore" not in imported  # config composition stays light


def test_wrong_key_gets_hydras_message_not_our_traceback(run_py):
    proc = run_py("optimizer.lrr=1", returncode=None)
    assert proc.returncode != 0
    assert "Could not override 'optimizer.lrr'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_group_option_lists_the_available_ones(run_py):
    proc = run_py("model=birealnet99", returncode=None)
    assert proc.returncode != 0
    assert "Could not find 'model/birealnet99'" in proc.stderr and "birealnet34" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_badly_typed_value_is_rejected_by_the_schema(run_py):
    proc = run_py("train.epochs=many", "task=train", returncode=None)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "train.epochs" in proc.stderr


def test_unknown_task_lists_the_tasks(run_py):
    proc = run_py("task=dance", returncode=None)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "dance" in proc.stderr and "train" in proc.stderr and "eval" in proc.stderr
