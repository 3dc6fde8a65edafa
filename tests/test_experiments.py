"""The recipes in conf/experiment/: the seed's values composed, the authors' recipe, two-step training run."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import ListConfig, OmegaConf

from birealnet_exp.config import register_configs

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
register_configs()
IMAGENET_OPTIONS = ("dataset/imagenet.yaml", "augment/imagenet.yaml")
needs_imagenet = pytest.mark.skipif(
    not all((CONF / p).is_file() for p in IMAGENET_OPTIONS),
    reason="dataset=imagenet or augment=imagenet absent",
)
needs_ascend8 = pytest.mark.skipif(
    not (CONF / "hardware/ascend8.yaml").is_file(), reason="hardware=ascend8 absent"
)


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


SEED_VALUES = {  # FACTS.md: birealnet34.yaml and its argparse defaults, as keys here
    "model._target_": "birealnet_exp.models.birealnet.birealnet34",
    "model.variant": "upstream",
    "dataset.num_classes": 1000,
    "dataset.image_size": 224,
    "dataset.crop_pct": 0.875,
    "dataset.interpolation": "bilinear",
    "dataset.num_parallel_workers": 32,
    "augment.mixup": 0.0,
    "augment.cutmix": 0.0,
    "augment.auto_augment": None,
    "augment.re_prob": 0.0,
    "augment.re_mode": "pixel",
    "augment.re_count": 1,
    "augment.mixup_prob": 1.0,
    "augment.switch_prob": 0.5,
    "augment.mixup_mode": "batch",
    "augment.label_smoothing": 0.0,
    "optimizer._target_": "birealnet_exp.optim.optimizers.adam",
    "optimizer.lr": 0.001,
    "optimizer.betas": [0.9, 0.999],
    "optimizer.eps": 1e-8,
    "optimizer.weight_decay": 0.0,
    "schedule._target_": "birealnet_exp.optim.schedules.linear",
    "schedule.min_lr": 1e-6,
    "schedule.warmup_lr": 1e-5,
    "schedule.warmup_epochs": 0,
    "schedule.cooldown_epochs": 10,
    "train.epochs": 300,
    "train.batch_size": 128,
    "train.amp_level": "O1",
    "train.loss_scale": "dynamic",
    "train.loss_scale_value": None,
    "train.loss_scale_factor": 2.0,
    "train.loss_scale_window": 2000,
    "train.clip_grad_norm": 5.0,
    "train.keep_checkpoints": 20,
    "seed": 0,
}


def value(cfg, key: str):
    node = OmegaConf.select(cfg, key)
    return list(node) if isinstance(node, ListConfig) else node


@needs_imagenet
@needs_ascend8
def test_seed_recipe_composes_every_seed_value():
    cfg = composed("experiment=birealnet34_imagenet_8p")
    for key, expected in SEED_VALUES.items():
        assert value(cfg, key) == expected, key
    assert cfg.hardware.device_target == "Ascend"


@needs_imagenet
@needs_ascend8
def test_cfg_job_shows_the_seed_values(run_py):
    proc = run_py("experiment=birealnet34_imagenet_8p", "--cfg", "job", timeout=120)
    for line in (
        "epochs: 300",
        "batch_size: 128",
        "amp_level: O1",
        "loss_scale: dynamic",
        "cooldown_epochs: 10",
    ):
        assert line in proc.stdout


@needs_imagenet
def test_authors_recipe_composes():
    cfg = composed("experiment=birealnet18_imagenet")
    assert cfg.model._target_.endswith("birealnet18") and cfg.model.variant == "paper"
    assert (cfg.optimizer.lr, cfg.schedule.min_lr, cfg.train.epochs, cfg.train.batch_size) == (
        1e-3,
        0.0,
        256,
        512,
    )
    assert cfg.augment.label_smoothing == 0.1 and cfg.optimizer.weight_decay == 0.0


def test_two_step_recipe_composes_reactnet_values():
    cfg = composed("experiment=two_step")
    assert cfg.task == "two_step" and cfg.optimizer.lr == 5e-4 and cfg.train.epochs == 256
    assert cfg.two_step.step1.model.binary == "activations" and cfg.two_step.step2.model.binary == "both"


@pytest.mark.slow  # two trainings in one process: ~110 s on this 2-core machine
def test_two_step_training_runs_both_steps_in_one_command(run_py, tmp_path):
    overrides = [
        "experiment=two_step",
        "model.width=8",
        "model.stem=small",
        "train.epochs=1",
        "train.batch_size=100",
        "optimizer.lr=5e-3",
        f"hydra.run.dir={tmp_path}",
    ]
    run_py(*overrides, timeout=900)
    for step in ("step1", "step2"):
        assert (tmp_path / step / "checkpoints/last.ckpt").is_file() and (
            tmp_path / step / "summary.json"
        ).is_file()
    log = (tmp_path / "run.log").read_text()
    assert "step1: model.binary=activations" in log and "step2: model.binary=both" in log
    assert (
        f"checkpoint {tmp_path / 'step1/checkpoints/last.ckpt'}: loaded" in log
    )  # step 2 starts from step 1
    step2 = json.loads((tmp_path / "step2/summary.json").read_text())
    assert step2["best_val_top1"] > 0.1  # above chance after one epoch from step 1's weights
