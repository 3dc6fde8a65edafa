"""The ImageFolder pipeline (dataset=folder|imagenet) on small generated JPEG folders."""

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from birealnet_exp.config import register_configs
from birealnet_exp.data.folder import create_folder
from birealnet_exp.data.transforms import eval_resize_size, folder_transforms
from birealnet_exp.engine.distributed import Dist

CONF = Path(__file__).resolve().parents[2] / "conf"
register_configs()


def augment(option: str = "imagenet", **overrides):
    node = OmegaConf.load(CONF / "augment" / f"{option}.yaml")
    return OmegaConf.merge(node, overrides)


def collect(split):
    images, labels = [], []
    for x, y in split.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def folder(root, split, augment_node=None, **kwargs):
    kwargs = {"num_classes": 3, "image_size": 32, "num_parallel_workers": 2, **kwargs}
    return create_folder(
        split=split, batch_size=4, augment=augment_node or augment(), root=str(root), **kwargs
    )


@pytest.mark.parametrize("split", ["train", "val"])
def test_shapes_dtypes_and_labels(image_folder, split):
    data = folder(image_folder, split)
    count = 24 if split == "train" else 12
    assert (data.num_samples, data.steps_per_epoch, data.num_classes) == (count, count // 4, 3)
    images, labels = collect(data)
    assert images.shape == (count, 3, 32, 32) and images.dtype == np.float32
    assert labels.dtype == np.int32 and sorted(set(labels.tolist())) == [0, 1, 2]
    assert np.bincount(labels).tolist() == [count // 3] * 3
    assert -3.0 < images.min() < images.max() < 3.0  # normalized by the ImageNet mean/std


def test_classes_are_sorted_folder_names_and_labels_follow_them(image_folder):
    images, labels = collect(folder(image_folder, "val", augment("none")))
    # conftest puts the class colour in channel `label`: cat=red(0), dog=green(1), fox=blue(2)
    assert np.array_equal(images.mean(axis=(2, 3)).argmax(axis=1), labels)


@pytest.mark.parametrize("size,crop_pct,resize", [(224, 0.875, 256), (32, 0.875, 36), (48, 1.0, 48)])
def test_eval_resize_is_image_size_over_crop_pct(size, crop_pct, resize):
    assert eval_resize_size(size, crop_pct) == resize


@pytest.mark.parametrize("eval_resize", ["shorter", "square"])
@pytest.mark.parametrize("hw", [(40, 90), (90, 40), (33, 33)])
def test_eval_transform_output_is_exactly_image_size(eval_resize, hw):
    image = np.random.default_rng(0).integers(0, 255, (*hw, 3), dtype=np.uint8)
    import io

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG")
    data = np.frombuffer(buffer.getvalue(), np.uint8)
    out = data
    for op in folder_transforms(split="val", image_size=28, augment=augment(), eval_resize=eval_resize):
        out = op(out)
    assert out.shape == (3, 28, 28) and out.dtype == np.float32


def test_eval_resize_modes_differ_on_non_square_images():
    """shorter keeps the aspect ratio (crops the long side); square squashes the whole image in."""
    image = np.zeros((40, 80, 3), dtype=np.uint8)
    image[:, :20] = 255  # a white band on the left quarter
    outs = {}
    for mode in ("shorter", "square"):
        out = image
        for op in folder_transforms(
            split="val", image_size=32, augment=augment(), crop_pct=1.0, eval_resize=mode
        )[1:]:  # skip Decode: feed the decoded array
            out = op(out)
        outs[mode] = out
    assert outs["shorter"][0, :, 0].max() < 0  # the centre square of a 64x32 resize misses the band
    assert outs["square"][0, :, 0].min() > 1.5  # squashed: the band is at the left edge


def test_train_augment_changes_images_but_not_labels(image_folder):
    plain, labels = collect(folder(image_folder, "train", augment("none"), seed=1))
    augmented, aug_labels = collect(folder(image_folder, "train", augment("imagenet"), seed=1))
    assert np.array_equal(labels, aug_labels)  # same seed, same shuffle
    assert not np.allclose(plain, augmented)


def test_two_train_shards_cover_the_set_without_overlap(image_folder):
    node = augment("none")  # deterministic transform: each file gives the same tensor everywhere
    everything, _ = collect(folder(image_folder, "train", node))
    keys = {np.round(x, 3).tobytes() for x in everything}
    assert len(keys) == 24
    shards = []
    for rank in range(2):
        shard = folder(image_folder, "train", node, dist=Dist(rank=rank, group_size=2))
        assert shard.num_samples == 12 and shard.steps_per_epoch == 3
        shards.append({np.round(x, 3).tobytes() for x in collect(shard)[0]})
    assert not shards[0] & shards[1] and shards[0] | shards[1] == keys


def test_val_is_the_whole_set_on_every_rank(image_folder):
    full = collect(folder(image_folder, "val"))
    for rank in range(2):
        data = folder(image_folder, "val", dist=Dist(rank=rank, group_size=2))
        assert data.num_samples == 12
        images, labels = collect(data)
        assert np.array_equal(images, full[0]) and np.array_equal(labels, full[1])


def test_mixing_gives_soft_targets_on_folder_data(image_folder):
    images, targets = collect(folder(image_folder, "train", augment("imagenet", mixup=0.4, cutmix=1.0)))
    assert images.shape == (24, 3, 32, 32) and targets.shape == (24, 3) and targets.dtype == np.float32
    assert np.allclose(targets.sum(axis=1), 1.0, atol=1e-6) and targets.min() >= 0


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "augment").glob("*.yaml")))
def test_every_augment_option_runs_on_folder_data(image_folder, option):
    images, targets = next(
        folder(image_folder, "train", augment(option)).dataset.create_tuple_iterator(
            num_epochs=1, output_numpy=True
        )
    )
    assert images.shape == (4, 3, 32, 32) and np.isfinite(images).all() and len(targets) == 4


@pytest.mark.parametrize("option", ["folder", "imagenet"])
def test_dataset_options_instantiate_with_a_generated_folder(image_folder, option):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                f"dataset={option}",
                f"dataset.root={image_folder}",
                "dataset.num_classes=3",
                "dataset.image_size=32",
                "train.batch_size=4",
            ],
        )
    data = instantiate(cfg.dataset, _partial_=True)(
        split="train", batch_size=4, augment=cfg.augment, dist=Dist(), seed=0
    )
    assert data.num_samples == 24 and data.num_classes == 3 == cfg.model.num_classes
