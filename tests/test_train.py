"""A real end-to-end training run through run.py in its own process, and eval of its checkpoint."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = {
    "epoch",
    "step",
    "lr",
    "train_loss",
    "val_loss",
    "val_top1",
    "val_top5",
    "epoch_time_s",
    "train_img_per_s",
}

TINY = ("train.epochs=2", "model.width=8", "optimizer.lr=5e-3")  # a width-8 BiRealNet-18, two epochs


@pytest.fixture(scope="module")
def trained(run_py, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run_py(*TINY, f"hydra.run.dir={out}")
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_folder_has_every_file(trained):
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        ".hydra/hydra.yaml",
        "run.log",
        "metrics.jsonl",
        "summary.json",
        "curves.png",
        "lr_schedule.png",
        "model_summary.txt",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "checkpoints/epoch_0001.ckpt",
        "checkpoints/epoch_0002.ckpt",
    ):
        assert (trained / name).is_file(), f"{name} missing from the run folder"
    assert (trained / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((trained / "checkpoints").glob(".*")), "a temporary checkpoint file was left behind"


def test_metrics_and_summary_are_sane(trained):
    records = read_jsonl(trained / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2] and all(METRIC_KEYS <= set(r) for r in records)
    assert records[1]["step"] == 2 * records[0]["step"] == 2 * (1500 // 64)
    assert records[1]["lr"] < records[0]["lr"] <= 5e-3
    for r in records:
        assert 0.0 <= r["val_top1"] <= r["val_top5"] <= 1.0
        assert 0.0 < r["train_loss"] < 10 and r["train_img_per_s"] > 0 and r["epoch_time_s"] > 0
    # it learns: two epochs of a width-8 BiRealNet are far above chance (0.1) on digits
    assert records[-1]["val_top1"] > 0.3
    summary = json.loads((trained / "summary.json").read_text())
    best = max(records, key=lambda r: r["val_top1"])
    assert summary["best_val_top1"] == best["val_top1"] and summary["best_epoch"] == best["epoch"]
    assert summary["final_val_top1"] == records[-1]["val_top1"] and summary["epochs"] == 2
    assert summary["num_params"] > 0 and summary["wall_s"] > 0
    log = (trained / "run.log").read_text()
    assert "epoch 2/2" in log and "best val_top1" in log


def test_eval_of_best_checkpoint_reproduces_the_logged_top1(run_py, trained, tmp_path):
    run_py(
        "task=eval",
        "model.width=8",
        f"model.pretrained={trained / 'checkpoints/best.ckpt'}",
        f"hydra.run.dir={tmp_path}",
    )
    metrics = json.loads((tmp_path / "eval.json").read_text())
    summary = json.loads((trained / "summary.json").read_text())
    assert metrics["val_top1"] == pytest.approx(summary["best_val_top1"], abs=1e-9)


def network_weights(path: Path) -> dict:
    import mindspore as ms

    from birealnet_exp.models.birealnet import birealnet18

    names = set(birealnet18(num_classes=10, width=8, stem="small").parameters_dict())
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items() if k in names}


def test_killed_run_resumes_to_the_same_epochs_metrics_and_weights(run_py, trained, tmp_path):
    """Kill a run once its first last.ckpt exists, resume it in its folder: it ends as the uninterrupted
    run did (same seed, so the first epoch also shows the same run twice is the same run)."""
    import numpy as np

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "run.py", *TINY, f"hydra.run.dir={out}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while (
        not (out / "checkpoints/last.ckpt").exists() and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoints/last.ckpt").exists(), "the run never wrote its first checkpoint"
    assert not (out / "summary.json").exists(), "the run finished before it was killed: nothing to resume"

    run_py(*TINY, f"hydra.run.dir={out}", "train.resume=true")
    first, resumed = read_jsonl(trained / "metrics.jsonl"), read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in resumed] == [1, 2]
    for a, b in zip(first, resumed, strict=True):
        for key in ("step", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "overflow_steps"):
            assert a[key] == b[key], (a["epoch"], key)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == 1 and summary["epochs"] == 2
    assert summary["best_val_top1"] == json.loads((trained / "summary.json").read_text())["best_val_top1"]
    expected, got = (
        network_weights(trained / "checkpoints/last.ckpt"),
        network_weights(out / "checkpoints/last.ckpt"),
    )
    assert expected.keys() == got.keys() and len(expected) > 0
    for name in expected:
        np.testing.assert_array_equal(expected[name], got[name], err_msg=name)
    assert "resumed from" in (out / "run.log").read_text()


def test_resume_from_an_epoch_checkpoint_into_a_new_folder(run_py, trained, tmp_path):
    run_py(*TINY, f"hydra.run.dir={tmp_path}", f"train.resume={trained / 'checkpoints/epoch_0001.ckpt'}")
    first, resumed = read_jsonl(trained / "metrics.jsonl"), read_jsonl(tmp_path / "metrics.jsonl")
    assert resumed[0] == first[0]  # copied from the source run
    for key in ("lr", "train_loss", "val_loss", "val_top1"):
        assert resumed[1][key] == first[1][key], key


def test_resume_without_a_checkpoint_is_one_clear_line(run_py, tmp_path):
    proc = run_py(*TINY, f"hydra.run.dir={tmp_path}", "train.resume=true", returncode=2)
    assert "train.resume=true" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_seed_format_checkpoint_evaluates_like_our_own(run_py, trained, tmp_path):
    """The seed's training checkpoints prefix network keys with `model.` and carry Adam moments and the
    loss scale: built here from our best.ckpt with those names, it loads (prefix stripped, extras reported)
    and gives the same val top-1."""
    import mindspore as ms

    ours = ms.load_checkpoint(str(trained / "checkpoints/best.ckpt"))
    network = network_weights(trained / "checkpoints/best.ckpt")
    seed_entries = [{"name": f"model.{k}", "data": ms.Tensor(v)} for k, v in network.items()]
    seed_entries += [
        {"name": f"{m}.model.{k}", "data": ms.Tensor(v * 0)}
        for m in ("adam_m", "adam_v")
        for k, v in network.items()
    ]
    seed_entries += [
        {"name": "scale_sense", "data": ms.Tensor(16777216.0, ms.float32)},
        {"name": "global_step", "data": ms.Tensor([460], ms.int32)},
    ]
    assert set(network) == {k for k in ours if k in network}
    seed_ckpt = tmp_path / "birealnet_seed.ckpt"
    ms.save_checkpoint(seed_entries, str(seed_ckpt))
    run_py(
        "task=eval", "model.width=8", f"model.pretrained={seed_ckpt}", f"hydra.run.dir={tmp_path / 'eval'}"
    )
    metrics = json.loads((tmp_path / "eval/eval.json").read_text())
    summary = json.loads((trained / "summary.json").read_text())
    assert metrics["val_top1"] == pytest.approx(summary["best_val_top1"], abs=1e-9)
    log = (tmp_path / "eval/run.log").read_text()
    n = len(network)
    assert (
        f"loaded {n} parameters, stripped the 'model.' prefix, ignored {2 * n + 2} non-network entries" in log
    )


def test_amp_in_graph_mode_on_the_cpu_is_refused_in_one_line(run_py, tmp_path):
    proc = run_py(*TINY, "train.amp_level=O1", f"hydra.run.dir={tmp_path}", returncode=2)
    assert "hardware.mode=pynative" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_export_mindir_round_trips(run_py, trained, tmp_path):
    run_py(
        "task=export",
        "model.width=8",
        f"model.pretrained={trained / 'checkpoints/best.ckpt'}",
        "export.batch_size=2",
        f"hydra.run.dir={tmp_path}",
    )
    report = json.loads((tmp_path / "export.json").read_text())
    assert report["format"] == "mindir" and report["input_shape"] == [2, 3, 32, 32]
    assert (tmp_path / "model.mindir").is_file() and report["bytes"] > 0
    assert report["max_abs_logit_diff"] < 1e-5
    assert not list(tmp_path.glob(".*.mindir"))
