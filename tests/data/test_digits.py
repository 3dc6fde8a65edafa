import numpy as np
import pytest
from omegaconf import OmegaConf

from birealnet_exp.data.digits import create_digits, digits_arrays
from birealnet_exp.engine.distributed import Dist
from birealnet_exp.errors import UsageError

BASIC = OmegaConf.create({"crop_padding": 4, "hflip": 0.0, "label_smoothing": 0.0})


def collect(split):
    images, labels = [], []
    for x, y in split.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def test_split_is_fixed_stratified_and_disjoint():
    arrays = digits_arrays(32, 297)
    (xt, yt), (xv, yv) = arrays["train"], arrays["val"]
    assert xt.shape == (1500, 32, 32, 3) and xv.shape == (297, 32, 32, 3)
    assert xt.dtype == np.uint8 and yt.dtype == np.int32
    assert set(np.unique(yt)) == set(range(10)) == set(np.unique(yv))
    assert np.bincount(yv).min() >= 28  # stratified: about 30 per class
    # no val image is also a train image (the raw digits have no exact duplicates across the split)
    train_rows = {row.tobytes() for row in xt.reshape(len(xt), -1)}
    assert not any(row.tobytes() in train_rows for row in xv.reshape(len(xv), -1))
    # the three channels are the same grey image: real RGB layout of a grey source
    assert np.array_equal(xt[..., 0], xt[..., 2])


def test_val_pipeline_yields_every_sample_once_normalised():
    val = create_digits(split="val", batch_size=64, augment=BASIC)
    assert (val.num_samples, val.steps_per_epoch) == (297, 5)
    images, labels = collect(val)
    assert images.shape == (297, 3, 32, 32) and images.dtype == np.float32
    assert labels.dtype == np.int32 and labels.min() == 0 and labels.max() == 9
    assert np.array_equal(np.sort(labels), np.sort(digits_arrays(32, 297)["val"][1]))
    assert abs(float(images.mean())) < 0.2 and 0.8 < float(images.std()) < 1.2


def test_train_pipeline_drops_partial_batch_and_augments():
    train = create_digits(split="train", batch_size=64, augment=BASIC, seed=3)
    assert train.steps_per_epoch == 1500 // 64
    images, labels = collect(train)
    assert images.shape == (23 * 64, 3, 32, 32)
    plain = create_digits(split="train", batch_size=64, augment=OmegaConf.create({"crop_padding": 0}), seed=3)
    plain_images, plain_labels = collect(plain)
    assert np.array_equal(labels, plain_labels)  # same seed, same shuffle order
    assert not np.allclose(images, plain_images)  # the padded random crop moved the digits


def test_train_shards_cover_the_split_without_overlap():
    seen = []
    for rank in range(2):
        shard = create_digits(split="train", batch_size=50, augment=BASIC, dist=Dist(rank=rank, group_size=2))
        assert shard.num_samples == 750 and shard.steps_per_epoch == 15
        seen.append(collect(shard)[1])
    # labels of the two shards together are exactly the train labels
    assert np.array_equal(np.sort(np.concatenate(seen)), np.sort(digits_arrays(32, 297)["train"][1]))


def test_batch_larger_than_shard_is_a_clear_error():
    with pytest.raises(UsageError, match="lower train.batch_size"):
        create_digits(split="train", batch_size=4096, augment=BASIC)
