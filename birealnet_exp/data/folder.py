"""ImageFolder trees (`root/train/<class>/*.JPEG`, `root/val/<class>/...`): ImageNet or any other.

Files are listed and checked in Python before any work starts (bad data gets one clear line); bytes are
read by a `GeneratorDataset` source and decoded, cropped and normalized by C++ vision ops.
"""

from __future__ import annotations

import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birealnet_exp.data.loader import DataSplit, batch_split, clamp_workers
from birealnet_exp.data.transforms import folder_transforms
from birealnet_exp.engine.distributed import Dist
from birealnet_exp.errors import UsageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")  # case-insensitive; other files are ignored
BAD_IMAGE_POLICIES = ("error", "skip")


@dataclass
class FolderIndex:
    """The image files of one split, their labels (index into `classes`) and what was left out."""

    paths: list[str]
    labels: np.ndarray  # int32
    classes: list[str]
    ignored: int = 0  # files without an image extension
    skipped: int = 0  # bad images left out under on_bad_image=skip


def scan_split(root: str | os.PathLike, split: str, num_classes: int | None) -> FolderIndex:
    """List `root/split/<class>/<image>` (classes sorted by name); check the tree and the class count."""
    if root in (None, "", "???"):
        raise UsageError("this dataset needs a folder: pass dataset.root=<folder holding train/ and val/>")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UsageError(f"dataset.root={root} is not a folder: pass the folder holding train/ and val/")
    folder = root / split
    if not folder.is_dir():
        raise UsageError(
            f"{folder} is missing: dataset.root needs a {split}/ folder with one folder per class"
        )
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        raise UsageError(
            f"{folder} has no class folders: put each class's images in {folder}/<class>/"
            " (ImageNet's flat val/ needs sorting into class folders first)"
        )
    train_folder = root / "train"
    if split != "train" and train_folder.is_dir():
        train_classes = sorted(entry.name for entry in os.scandir(train_folder) if entry.is_dir())
        if classes != train_classes:
            odd = sorted(set(classes) ^ set(train_classes))[:3]
            raise UsageError(
                f"{folder} and {train_folder} have different class folders (e.g. {', '.join(odd)}):"
                " labels are folder names in sorted order, so both splits need the same class folders"
            )
    if num_classes is None:
        raise UsageError(f"{folder} has {len(classes)} class folders: set dataset.num_classes={len(classes)}")
    if len(classes) != int(num_classes):
        raise UsageError(
            f"{folder} has {len(classes)} class folders but dataset.num_classes={num_classes}:"
            f" set dataset.num_classes={len(classes)} or fix the folder"
        )
    paths: list[str] = []
    labels: list[int] = []
    ignored = 0
    for label, name in enumerate(classes):
        files = sorted(entry.path for entry in os.scandir(folder / name) if entry.is_file())
        images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        ignored += len(files) - len(images)
        if not images:
            raise UsageError(
                f"class folder {folder / name} has no images ({'|'.join(IMAGE_EXTENSIONS)}):"
                " add images or remove the folder"
            )
        paths += images
        labels += [label] * len(images)
    if ignored:
        log.info("%s: ignored %d files without an image extension", folder, ignored)
    return FolderIndex(paths, np.asarray(labels, dtype=np.int32), classes, ignored)


def image_problem(path: str) -> str | None:
    """Why `path` cannot be decoded (unreadable, not an image, truncated, corrupt), or None if it decodes.

    A JPEG is decoded at 1/8 scale (cheap); other formats in full. MindSpore's own decoder can crash the
    process on some corrupt JPEGs, so every file is decoded here once before the pipeline sees it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return f"unreadable ({error.strerror})"
    if not data:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("JPEG", "PNG", "BMP", "MPO"):
                return f"{image.format} is not a supported format (JPEG, PNG, BMP)"
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, SyntaxError, ValueError) as error:
        return f"truncated or corrupt ({error})"
    return None


def check_policy(policy: str) -> None:
    """`dataset.on_bad_image` is error or skip."""
    if policy not in BAD_IMAGE_POLICIES:
        raise UsageError(
            f"dataset.on_bad_image must be one of {'|'.join(BAD_IMAGE_POLICIES)}, got {policy!r}"
        )


def verify_images(index: FolderIndex, policy: str, folder: str, workers: int | None = None) -> FolderIndex:
    """Decode-check every file of `index` in threads; `policy` error raises, skip leaves bad files out."""
    check_policy(policy)
    log.info(
        "%s: decode-checking %d images (dataset.check_images=false skips this)", folder, len(index.paths)
    )
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers or min(32, (os.cpu_count() or 1) * 4)) as pool:
        problems = list(pool.map(image_problem, index.paths, chunksize=64))
    log.info("%s: checked %d images in %.1fs", folder, len(problems), time.perf_counter() - start)
    bad = [(path, why) for path, why in zip(index.paths, problems, strict=True) if why is not None]
    if not bad:
        return index
    if policy == "error":
        path, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UsageError(
            f"bad image {path}: {why}{more}: replace or remove it, or set dataset.on_bad_image=skip"
        )
    for path, why in bad[:10]:
        log.warning("skipping bad image %s: %s", path, why)
    log.warning(
        "%s: skipped %d bad images of %d (dataset.on_bad_image=skip)", folder, len(bad), len(problems)
    )
    if len(bad) == len(problems):
        raise UsageError(
            f"{folder}: all {len(bad)} images are bad (first: {bad[0][0]}: {bad[0][1]}): fix the folder"
        )
    keep = [why is None for why in problems]
    paths = [p for p, k in zip(index.paths, keep, strict=True) if k]
    return FolderIndex(paths, index.labels[np.asarray(keep)], index.classes, index.ignored, len(bad))


class EncodedImages:
    """Random-access source for `GeneratorDataset`: (encoded bytes as uint8, int32 label) per index."""

    def __init__(self, index: FolderIndex) -> None:
        self.paths, self.labels = index.paths, index.labels

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return np.fromfile(self.paths[i], dtype=np.uint8), self.labels[i]

    def __len__(self) -> int:
        return len(self.paths)


def create_folder(
    *,
    split: str,
    batch_size: int,
    augment: Any,
    dist: Dist = Dist(),
    seed: int = 0,
    root: str | None = None,
    num_classes: int | None = None,
    image_size: int = 224,
    crop_pct: float = 0.875,
    eval_resize: str = "shorter",
    interpolation: str = "bilinear",
    on_bad_image: str = "error",
    check_images: bool = True,
    num_parallel_workers: int = 8,
) -> DataSplit:
    """The `split` of an ImageFolder tree as a batched pipeline.

    train: shuffled and sharded by rank (`dist`); val: every sample on every rank, unsharded, so each
    rank's top-1 is over the whole val set exactly once.
    """
    import mindspore.dataset as ds

    check_policy(on_bad_image)
    index = scan_split(root, split, num_classes)
    if check_images:
        index = verify_images(index, on_bad_image, str(Path(str(root)) / split))
    train = split == "train"
    transforms = folder_transforms(
        split=split,
        image_size=int(image_size),
        augment=augment,
        crop_pct=crop_pct,
        eval_resize=eval_resize,
        interpolation=interpolation,
    )
    ds.config.set_seed(seed)
    shards = {"num_shards": dist.group_size, "shard_id": dist.rank} if train and dist.distributed else {}
    dataset = ds.GeneratorDataset(
        EncodedImages(index),
        column_names=["image", "label"],
        shuffle=train,
        num_parallel_workers=clamp_workers(min(4, int(num_parallel_workers))),
        python_multiprocessing=False,
        **shards,
    )
    return batch_split(
        dataset,
        split=split,
        transforms=transforms,
        num_samples=dataset.get_dataset_size(),
        batch_size=batch_size,
        num_classes=int(num_classes),
        num_parallel_workers=int(num_parallel_workers),
        augment=augment,
        seed=seed + dist.rank,
    )
