"""Training through dataset=folder on a folder made of the embedded digits (JPEG train, PNG val) learns."""

import json
from pathlib import Path

import pytest
from PIL import Image

from birealnet_exp.data.digits import digits_arrays

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("digits_folder")
    for split, (images, labels) in digits_arrays(32, 297).items():
        suffix = ".jpg" if split == "train" else ".png"
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / f"digit_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}{suffix}")
    return root


def test_training_on_a_folder_of_digits_learns(run_py, digits_folder, tmp_path):
    overrides = [
        "dataset=folder",
        f"dataset.root={digits_folder}",
        "dataset.image_size=32",
        "train.epochs=2",
        "model.width=8",
        "optimizer.lr=5e-3",
        f"hydra.run.dir={tmp_path}",
    ]
    run_py(*overrides, timeout=300)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[-1]["step"] == 2 * (1500 // 64)
    assert records[-1]["val_top1"] > 0.4  # chance is 0.1; this run reaches about 0.65
    assert "(-1, 10)" in (tmp_path / "model_summary.txt").read_text(), "10 class folders: 10 outputs"


@pytest.mark.slow
def test_mixup_sweep_trains_with_soft_targets(run_py, tmp_path):
    """`-m augment.mixup=0,0.2` is a real sweep: the second job trains on float32 soft targets."""
    overrides = [
        "-m",
        "augment.mixup=0,0.2",
        "augment.cutmix=1.0",
        "augment.mixup_mode=elem",
        "train.epochs=1",
        "model.width=8",
        f"hydra.sweep.dir={tmp_path}",
    ]
    run_py(*overrides)
    for job in ("0", "1"):
        summary = json.loads((tmp_path / job / "summary.json").read_text())
        assert 0.0 <= summary["best_val_top1"] <= 1.0 and summary["epochs"] == 1
    config = (tmp_path / "1" / ".hydra" / "config.yaml").read_text()
    assert "mixup: 0.2" in config and "cutmix: 1.0" in config
