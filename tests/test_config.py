"""Every option of every config group composes, and what has a `_target_` instantiates."""

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from birealnet_exp.config import register_configs

CONF = Path(__file__).resolve().parents[1] / "conf"
register_configs()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_default_is_the_tiny_birealnet18_on_digits_on_cpu():
    cfg = composed()
    assert cfg.model._target_.endswith("birealnet18") and cfg.model.width == 16 and cfg.model.stem == "small"
    assert cfg.dataset._target_.endswith("create_digits") and cfg.hardware.device_target == "CPU"
    assert cfg.task == "train" and cfg.model.num_classes == 10


@pytest.mark.parametrize("group", ["model", "dataset", "augment", "optimizer", "schedule", "hardware"])
def test_every_group_has_options(group):
    assert options(group), f"conf/{group}/ is empty"


@pytest.mark.parametrize("option", options("model"))
def test_model_options_instantiate(option):
    cfg = composed(f"model={option}")
    network = instantiate(cfg.model)
    assert len(network.trainable_params()) > 0


@pytest.mark.parametrize("option", options("optimizer"))
def test_optimizer_options_instantiate(option):
    cfg = composed(f"optimizer={option}")
    network = instantiate(cfg.model)
    schedule = np.full(10, cfg.optimizer.lr, dtype=np.float32)
    optimizer = instantiate(cfg.optimizer, _partial_=True)(network, schedule=schedule)
    assert len(optimizer.parameters) == len(network.trainable_params())


@pytest.mark.parametrize("option", options("schedule"))
def test_schedule_options_instantiate(option):
    cfg = composed(f"schedule={option}")
    lrs = instantiate(cfg.schedule, base_lr=cfg.optimizer.lr, epochs=3, steps_per_epoch=5)
    assert lrs.shape == (15,) and np.all(lrs > 0)
    assert np.all(lrs <= (cfg.optimizer.lr + cfg.schedule.min_lr) * 1.0001)  # cosine and exp add min_lr


@pytest.mark.parametrize("option", options("augment"))
def test_augment_options_compose_with_the_default_dataset(option):
    from birealnet_exp.tasks import build_data, build_loss

    cfg = composed(f"augment={option}")
    build_loss(cfg)
    from birealnet_exp.engine.distributed import Dist

    split = build_data(cfg, "train", Dist())
    images, labels = next(split.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert images.shape[0] == cfg.train.batch_size and labels.shape[0] == cfg.train.batch_size


@pytest.mark.parametrize("group", ["dataset", "hardware"])
def test_options_compose(group):
    for option in options(group):
        cfg = composed(f"{group}={option}")
        assert cfg[group] is not None
