"""Mixup / CutMix (timm semantics), random erasing, and the loss on soft and smoothed targets."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from birealnet_exp.data.digits import create_digits
from birealnet_exp.data.erasing import RandomErasing
from birealnet_exp.data.mixing import Mixup, cutmix_box, one_hot
from birealnet_exp.errors import UsageError

C = 5


def batch(size: int = 8):
    """Images whose every pixel is the sample index: the mixing source of a pixel is readable."""
    images = np.broadcast_to(np.arange(size, dtype=np.float32)[:, None, None, None], (size, 3, 10, 12)).copy()
    labels = np.arange(size, dtype=np.int32) % C
    return images, labels


def test_mixup_batch_mode_mixes_with_the_reversed_batch_and_targets_match_lambda():
    images, labels = batch()
    mixup = Mixup(num_classes=C, mixup_alpha=0.4, seed=0)
    mixed, targets = mixup(images, labels)
    lam = float(mixup.last_lam[0])
    assert 0.0 < lam < 1.0 and np.all(mixup.last_lam == lam)
    assert np.allclose(mixed, lam * images + (1 - lam) * images[::-1])
    expected = lam * one_hot(labels, C) + (1 - lam) * one_hot(labels[::-1], C)
    assert targets.dtype == np.float32 and targets.shape == (8, C)
    assert np.allclose(targets, expected) and np.allclose(targets.sum(axis=1), 1.0)


def test_cutmix_corrected_lambda_is_the_fraction_of_pixels_kept():
    images, labels = batch()
    mixup = Mixup(num_classes=C, cutmix_alpha=1.0, seed=3)
    for _ in range(10):
        mixed, targets = mixup(images, labels)
        lam = float(mixup.last_lam[0])
        kept = (mixed[0, 0] == 0).mean()  # sample 0 keeps its own pixels (0), the box comes from sample 7
        assert kept == pytest.approx(lam, abs=1e-6)
        assert set(np.unique(mixed[0, 0])) <= {0.0, 7.0}
        assert np.allclose(targets[0], lam * one_hot([0], C)[0] + (1 - lam) * one_hot([7 % C], C)[0])


def test_cutmix_box_is_clipped_and_lambda_corrected():
    rng = np.random.default_rng(0)
    for lam in (0.1, 0.5, 0.9):
        (y0, y1, x0, x1), corrected = cutmix_box((20, 30), lam, rng)
        assert 0 <= y0 <= y1 <= 20 and 0 <= x0 <= x1 <= 30
        assert corrected == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 600)
        assert corrected >= lam - 0.1  # clipping only removes area from the box


@pytest.mark.parametrize("mode", ["elem", "pair"])
def test_elem_and_pair_modes_have_a_lambda_per_sample(mode):
    images, labels = batch()
    mixup = Mixup(num_classes=C, mixup_alpha=1.0, cutmix_alpha=1.0, mode=mode, seed=1)
    mixed, targets = mixup(images, labels)
    lams = mixup.last_lam
    assert len(np.unique(lams)) > 1
    if mode == "pair":
        assert np.allclose(lams, lams[::-1])  # pair i, N-1-i share one lambda
    expected = lams[:, None] * one_hot(labels, C) + (1 - lams[:, None]) * one_hot(labels[::-1], C)
    assert np.allclose(targets, expected, atol=1e-6) and np.allclose(targets.sum(axis=1), 1.0)
    for i in range(8):  # each sample holds only itself and its partner N-1-i, in the lambda's proportion
        own = mixed[i, 0]
        assert own.mean() == pytest.approx(lams[i] * i + (1 - lams[i]) * (7 - i), abs=1e-4)


def test_prob_zero_leaves_the_batch_alone_and_switch_prob_one_always_cuts():
    images, labels = batch()
    mixed, targets = Mixup(num_classes=C, mixup_alpha=1.0, prob=0.0)(images, labels)
    assert np.array_equal(mixed, images) and np.array_equal(targets, one_hot(labels, C))
    mixup = Mixup(num_classes=C, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=1.0, seed=2)
    for _ in range(5):
        mixed, _ = mixup(images, labels)
        assert set(np.unique(mixed[0, 0])) <= {0.0, 7.0}  # a pasted box, never a blend


def test_lambda_follows_beta_alpha_alpha():
    mixup = Mixup(num_classes=C, mixup_alpha=0.2, mode="elem", seed=0)
    images, labels = batch(200)
    mixup(images, labels)
    # Beta(0.2, 0.2): mean 0.5, variance 1 / (4 (2 alpha + 1)) = 0.1786
    assert np.mean(mixup.last_lam) == pytest.approx(0.5, abs=0.07)
    assert np.var(mixup.last_lam) == pytest.approx(0.1786, abs=0.04)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mixup_alpha": -1}, "augment.mixup"),
        ({"mixup_alpha": 1, "prob": 2}, "augment.mixup_prob"),
        ({"mixup_alpha": 1, "mode": "rows"}, "augment.mixup_mode"),
    ],
)
def test_bad_mixing_keys_are_usage_errors(kwargs, match):
    with pytest.raises(UsageError, match=match):
        Mixup(num_classes=C, **kwargs)


def test_digits_pipeline_with_mixup_yields_soft_targets():
    node = OmegaConf.create({"crop_padding": 0, "mixup": 0.2, "cutmix": 1.0, "mixup_mode": "elem"})
    data = create_digits(split="train", batch_size=64, augment=node)
    images, targets = next(data.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert images.shape == (64, 3, 32, 32) and targets.shape == (64, 10) and targets.dtype == np.float32
    assert np.allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert (targets.max(axis=1) < 1).any()  # some rows really are mixed
    val = create_digits(split="val", batch_size=64, augment=node)
    _, val_labels = next(val.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert val_labels.dtype == np.int32 and val_labels.ndim == 1  # evaluation never mixes


def test_odd_batch_with_mixing_is_a_usage_error():
    node = OmegaConf.create({"mixup": 0.2})
    with pytest.raises(UsageError, match="train.batch_size even"):
        create_digits(split="train", batch_size=63, augment=node)


@pytest.mark.parametrize("mode", ["const", "rand", "pixel"])
def test_random_erasing_modes(mode):
    images = np.full((16, 3, 24, 24), 5.0, dtype=np.float32)
    erased = RandomErasing(1.0, mode, max_count=2, seed=0)(images)
    changed = erased != 5.0
    assert changed.any(axis=(1, 2, 3)).all()  # prob 1: every image has a box
    fraction = changed[:, 0].mean(axis=(1, 2))
    assert fraction.max() <= 1 / 3 + 0.05 and fraction.min() >= 0.01
    if mode == "const":
        assert np.all(erased[changed] == 0.0)
    if mode == "rand":  # one colour per box and channel
        assert len(np.unique(erased[0, 0][changed[0, 0]])) <= 2
    assert np.array_equal(RandomErasing(0.0, mode)(images), images)


def test_label_smoothing_is_timm_eps_over_c_on_hard_and_soft_targets():
    import mindspore as ms

    from birealnet_exp.engine.losses import create_loss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, C)).astype(np.float32)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    labels = np.array([0, 1, 2, 3, 4, 0], dtype=np.int32)
    eps = 0.1
    smoothed = one_hot(labels, C) * (1 - eps) + eps / C  # on 1 - eps + eps/C, off eps/C
    assert smoothed[0, 0] == pytest.approx(0.92) and smoothed[0, 1] == pytest.approx(0.02)
    loss = create_loss(eps)
    hard = float(loss(ms.Tensor(logits), ms.Tensor(labels)).asnumpy())
    assert hard == pytest.approx(float(-(smoothed * log_p).sum(axis=1).mean()), rel=1e-5)
    # mixed soft targets: smoothing the mix equals timm's mix of smoothed one-hots
    lam = 0.3
    mixed = lam * one_hot(labels, C) + (1 - lam) * one_hot(labels[::-1], C)
    timm_targets = lam * smoothed + (1 - lam) * (one_hot(labels[::-1], C) * (1 - eps) + eps / C)
    soft = float(loss(ms.Tensor(logits), ms.Tensor(mixed)).asnumpy())
    assert soft == pytest.approx(float(-(timm_targets * log_p).sum(axis=1).mean()), rel=1e-5)
    plain = float(create_loss(0.0)(ms.Tensor(logits), ms.Tensor(mixed)).asnumpy())
    assert plain == pytest.approx(float(-(mixed * log_p).sum(axis=1).mean()), rel=1e-5)
