import numpy as np
import pytest

from birealnet_exp.errors import UsageError
from birealnet_exp.optim.schedules import fractional_epochs, linear


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
