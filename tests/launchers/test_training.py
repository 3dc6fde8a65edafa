"""run.py training under the launchers, as real processes: 2-worker CPU data parallel (hardware=cpu2),
a rank killed mid-run, a device-pool sweep, and the hardware options that cannot run here."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from launcher_testing import alive, processes_mentioning, rank_pids

REPO = Path(__file__).resolve().parents[2]
TINY = ("model.width=8", "optimizer.lr=5e-3", "train.epochs=1")  # a width-8 BiRealNet-18, one epoch
DIGEST = re.compile(r"rank (\d) of 2: weights digest ([0-9a-f]{16})")


def run_py(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def rank_logs(out: Path) -> str:
    return "".join(f"\n--- {p} ---\n" + p.read_text()[-3000:] for p in sorted(out.glob("**/rank_*/log.txt")))


@pytest.mark.usefixtures("no_stray_processes")
def test_cpu2_trains_data_parallel_into_one_run_folder(tmp_path: Path) -> None:
    """`python run.py hardware=cpu2` (no -m): two ranks, averaged gradients, rank 0 writes the folder."""
    out = tmp_path / "run"
    done = run_py("hardware=cpu2", *TINY, f"hydra.sweep.dir={out}")
    assert done.returncode == 0, done.stdout[-3000:] + rank_logs(out)
    written = ("metrics.jsonl", "summary.json", "model_summary.txt", "curves.png", "last.ckpt", "best.ckpt")
    for name in written:
        found = sorted(out.rglob(name))
        assert found == [out / name] or found == [out / "checkpoints" / name], f"{name}: {found}"
    assert not (out / "0").exists() and not (out / "rank_1" / ".hydra").exists()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1] and records[0]["step"] == 750 // 64
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
    assert yaml.safe_load((out / ".hydra/config.yaml").read_text())["hardware"]["num_devices"] == 2
    # every rank logs to its own files; each trained on its own half of the 1,500 train images
    logs = {rank: (out / f"rank_{rank}" / "log.txt").read_text() for rank in (0, 1)}
    job_logs = {0: (out / "run.log").read_text(), 1: (out / "rank_1" / "run.log").read_text()}
    for rank in (0, 1):
        assert "750 train / 297 val samples, 11 steps per epoch" in job_logs[rank]
        assert "epoch 1/1" in logs[rank]
    digests = {int(m[0]): m[1] for log in job_logs.values() for m in DIGEST.findall(log)}
    assert set(digests) == {0, 1} and digests[0] == digests[1], f"ranks ended with other weights: {digests}"
    assert "rank 1" not in job_logs[0]


@pytest.mark.usefixtures("no_stray_processes")
def test_killing_a_rank_mid_training_ends_the_job_fast(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "run.py", "hardware=cpu2", *TINY, "train.epochs=20", f"hydra.sweep.dir={out}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        rank_1_log = out / "rank_1" / "run.log"
        while time.monotonic() < deadline and proc.poll() is None:
            if rank_1_log.is_file() and "training birealnet18" in rank_1_log.read_text():
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        pids = rank_pids(out)
        assert len(alive(pids)) == 2
        os.kill(int((out / "rank_1" / "pid").read_text()), signal.SIGKILL)
        killed = time.monotonic()
        output, _ = proc.communicate(timeout=60)
        elapsed = time.monotonic() - killed
    finally:
        proc.kill()
    assert proc.returncode == 1, output[-3000:]
    assert "job #0 (hardware=cpu2 " in output
    how = "rank 1 died without reporting (killed by a signal or os._exit); stopped rank(s) 0"
    assert f"failed: {how}" in output
    tail = output[output.index(f"--- last lines of {out / 'rank_1' / 'log.txt'} ---") :]
    assert "training birealnet18" in tail.split("\n---")[0]
    assert elapsed < 20, f"the job took {elapsed:.1f}s to end after rank 1 died"
    assert not alive(pids) and not processes_mentioning(str(out)), "a process of the job outlived it"
    assert not (out / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("no_stray_processes")
def test_a_sweep_runs_two_jobs_at_a_time_under_the_device_pool(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    done = run_py(
        "-m",
        "hydra/launcher=device_pool",
        "hydra.launcher.devices=[0,1]",
        "optimizer.lr=2e-3,5e-3",
        "augment.mixup=0,0.2",
        *TINY[:1],
        "train.epochs=1",
        f"hydra.sweep.dir={out}",
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + rank_logs(out)
    assert "device_pool: all 4 job(s) completed" in done.stdout
    spans, points = [], set()
    for job in range(4):
        folder = out / str(job)
        overrides = yaml.safe_load((folder / ".hydra/overrides.yaml").read_text())
        points.add(tuple(sorted(overrides)))
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["world_size"] == 1 and 0.0 <= summary["best_val_top1"] <= 1.0
        assert (folder / "metrics.jsonl").is_file() and (folder / "checkpoints/best.ckpt").is_file()
        stamps = re.findall(r"^\[([\d\-: ,]+)\]", (folder / "run.log").read_text(), re.MULTILINE)
        spans.append((stamps[0], stamps[-1]))
    assert len(points) == 4, points
    assert any(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if a is not b), (
        f"no two jobs overlapped: {spans}"
    )


def test_hardware_options_that_cannot_run_here_are_one_line() -> None:
    """No GPU or Ascend here: one line and exit 2, before any rank starts (ascend8 checks in the launcher)."""
    for option in ("hardware=gpu", "hardware=ascend8"):
        done = run_py(option, "model=birealnet34", "hydra.run.dir=/nonexistent/run", timeout=120)
        lines = [line for line in done.stdout.splitlines() if "no usable" in line]
        assert done.returncode == 2, done.stdout[-2000:]
        assert len(lines) == 1 and "use hardware=cpu (or cpu2)" in lines[0], done.stdout[-2000:]
        assert "Traceback" not in done.stdout
