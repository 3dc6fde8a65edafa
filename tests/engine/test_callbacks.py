"""Checkpointer: last.ckpt every epoch with the position, epoch files every N kept to the newest K,
best.ckpt network-only; Trainer.restore refuses checkpoints that do not fit."""

from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from birealnet_exp.engine.callbacks import Checkpointer
from birealnet_exp.engine.train_step import TrainStep
from birealnet_exp.engine.trainer import Trainer, epoch_seed
from birealnet_exp.errors import UsageError
from birealnet_exp.optim.optimizers import adam


def make_trainer(epochs: int = 6, steps: int = 2) -> Trainer:
    network = nn.Dense(4, 3)
    schedule = np.full(epochs * steps, 1e-3, np.float32)
    step = TrainStep(network, nn.CrossEntropyLoss(), adam(network, lr=1e-3, schedule=schedule), 5.0)
    trainer = Trainer(step, schedule, epochs=epochs)
    trainer.steps_per_epoch = steps
    return trainer


def end_epochs(checkpointer: Checkpointer, trainer: Trainer, tops: list[float]) -> None:
    for epoch, top1 in enumerate(tops, start=1):
        if top1 > trainer.best_val_top1:
            trainer.best_val_top1, trainer.best_epoch = top1, epoch
        checkpointer.on_epoch_end(trainer, {"epoch": epoch, "step": epoch * trainer.steps_per_epoch})


def test_checkpoints_every_n_keep_k_last_and_best(tmp_path: Path):
    trainer = make_trainer()
    checkpointer = Checkpointer(tmp_path, every=2, keep=2)
    end_epochs(checkpointer, trainer, [0.1, 0.5, 0.3, 0.2, 0.4, 0.45])
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "best.ckpt",
        "epoch_0004.ckpt",
        "epoch_0006.ckpt",
        "last.ckpt",
    ]
    last = ms.load_checkpoint(str(ckpts / "last.ckpt"))
    assert int(last["epoch"].asnumpy()) == 6 and int(last["step"].asnumpy()) == 12
    assert float(last["best_val_top1"]) == 0.5 and int(last["best_epoch"].asnumpy()) == 2
    assert {"scale_sense", "overflow_steps", "global_step", "weight"} <= set(last)
    assert any(k.startswith("moment1.") for k in last)  # the optimizer state
    best = ms.load_checkpoint(str(ckpts / "best.ckpt"))
    assert int(best["epoch"].asnumpy()) == 2 and not any(k.startswith("moment") for k in best)


def test_restore_takes_the_position_and_the_state(tmp_path: Path):
    trainer = make_trainer()
    end_epochs(Checkpointer(tmp_path, keep=0), trainer, [0.25, 0.75, 0.5])
    trainer.train_step.scale_sense.set_data(ms.Tensor(8.0, ms.float32))
    fresh = make_trainer()
    assert fresh.restore(tmp_path / "checkpoints/last.ckpt", steps_per_epoch=2) == 3
    assert (fresh.start_epoch, fresh.best_val_top1, fresh.best_epoch) == (3, 0.75, 2)
    np.testing.assert_array_equal(fresh.network.weight.asnumpy(), trainer.network.weight.asnumpy())
    assert not list((tmp_path / "checkpoints").glob("epoch_*"))  # keep=0 writes none


def test_restore_refuses_what_does_not_fit(tmp_path: Path):
    trainer = make_trainer()
    end_epochs(Checkpointer(tmp_path), trainer, [0.5])
    with pytest.raises(UsageError, match="steps per epoch"):
        make_trainer().restore(tmp_path / "checkpoints/last.ckpt", steps_per_epoch=3)
    with pytest.raises(UsageError, match="not a resumable checkpoint"):
        make_trainer().restore(tmp_path / "checkpoints/best.ckpt", steps_per_epoch=2)


def test_epoch_seeds_differ_by_epoch_and_seed():
    seeds = {epoch_seed(s, e) for s in range(3) for e in range(50)}
    assert len(seeds) == 150 and epoch_seed(0, 1) == epoch_seed(0, 1)


def test_bad_checkpoint_settings_are_one_clear_error(tmp_path: Path):
    with pytest.raises(UsageError, match="train.save_every"):
        Checkpointer(tmp_path, every=0)
