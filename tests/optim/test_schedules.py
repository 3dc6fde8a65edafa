import math

import numpy as np
import pytest

from birealnet_exp.errors import UsageError
from birealnet_exp.optim import schedules
from birealnet_exp.optim.schedules import fractional_epochs, linear

STEPS = 10  # steps per epoch in these tests


def test_linear_matches_the_seed_formula_per_step():
    lrs = linear(base_lr=1e-3, epochs=4, steps_per_epoch=10, min_lr=1e-6)
    assert lrs.shape == (40,) and lrs.dtype == np.float32
    for step in (0, 1, 9, 10, 25, 39):
        e = step / 10
        assert lrs[step] == pytest.approx(max(1e-3 * (1 - e / 4), 1e-6), rel=1e-6)
    assert np.all(np.diff(lrs) < 0)


def test_linear_is_floored_at_min_lr():
    lrs = linear(base_lr=1e-3, epochs=2, steps_per_epoch=1000, min_lr=2e-4)
    assert lrs.min() == pytest.approx(2e-4) and lrs[-1] == pytest.approx(2e-4)


def test_fractional_epochs_rejects_empty_runs():
    with pytest.raises(UsageError, match="steps_per_epoch"):
        fractional_epochs(3, 0)


def warmup(e: float, w: float, warmup_lr: float, base_lr: float) -> float:
    return warmup_lr + e / w * (base_lr - warmup_lr)


@pytest.mark.parametrize(
    "name, kwargs, formula",
    [
        ("linear", {}, lambda e, b, E, m: b * (1 - e / E)),
        ("cosine", {}, lambda e, b, E, m: 0.5 * (1 + math.cos(math.pi * (e - 2) / (E - 2))) * b + m),
        ("constant", {}, lambda e, b, E, m: b),
        ("exp", {"gamma": 0.9}, lambda e, b, E, m: b * 0.9**e + m),
        ("multistep", {"gamma": 0.5, "step_epochs": 3}, lambda e, b, E, m: b * 0.5 ** (e // 3)),
    ],
)
def test_schedule_values_at_chosen_steps_equal_the_formulas(name, kwargs, formula):
    base, epochs, min_lr, w, warmup_lr, cooldown = 1e-3, 8, 1e-6, 2, 1e-5, 3
    lrs = getattr(schedules, name)(
        base_lr=base,
        epochs=epochs,
        steps_per_epoch=STEPS,
        min_lr=min_lr,
        warmup_epochs=w,
        warmup_lr=warmup_lr,
        cooldown_epochs=cooldown,
        **kwargs,
    )
    assert lrs.shape == ((epochs + cooldown) * STEPS,) and lrs.dtype == np.float32
    unclipped = [formula(s / STEPS, base, epochs, min_lr) for s in range(epochs * STEPS)]
    top = max(max(unclipped), base)
    for step in (0, 1, 7, 19):  # warmup: e < 2
        e = step / STEPS
        assert lrs[step] == pytest.approx(warmup(e, w, warmup_lr, base), rel=1e-5), step
    for step in (20, 21, 35, 50, 79):  # the schedule's own shape, clipped to [min_lr, max]
        expected = min(max(formula(step / STEPS, base, epochs, min_lr), min_lr), top)
        assert lrs[step] == pytest.approx(expected, rel=1e-5), step
    assert np.all(lrs[epochs * STEPS :] == np.float32(min_lr))  # the cooldown
    assert lrs.min() >= np.float32(min_lr)


def test_clipping_to_min_lr_applies_to_every_schedule():
    lrs = schedules.exp(base_lr=1.0, epochs=50, steps_per_epoch=2, gamma=0.5, min_lr=0.0)
    assert lrs[-1] == pytest.approx(0.5**49.5, rel=1e-4)
    floored = schedules.multistep(
        base_lr=1.0, epochs=10, steps_per_epoch=2, gamma=0.1, step_epochs=2, min_lr=1e-3
    )
    assert floored.min() == pytest.approx(1e-3) and floored[0] == 1.0
    assert np.all(floored[12:] == np.float32(1e-3))  # 1e-4 and below (e >= 8) are clipped up


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"warmup_epochs": 5}, "warmup_epochs"),
        ({"cooldown_epochs": -1}, "cooldown_epochs"),
        ({"min_lr": -1.0}, "min_lr"),
    ],
)
def test_bad_schedule_settings_are_one_clear_error(kwargs, message):
    with pytest.raises(UsageError, match=message):
        schedules.cosine(base_lr=1e-3, epochs=5, steps_per_epoch=2, **kwargs)


def test_plot_schedule_writes_a_png(tmp_path):
    lrs = schedules.cosine(base_lr=1e-3, epochs=3, steps_per_epoch=4, warmup_epochs=1)
    schedules.plot_schedule(lrs, 4, tmp_path / "lr_schedule.png")
    assert (tmp_path / "lr_schedule.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*"))
