"""Images per second of the ImageNet train pipeline against a BiRealNet-18 train step at the same size.

python bench/data_throughput.py [--images 480] [--size 224] [--batch 32] [--steps 4]

Generates ImageNet-sized JPEGs (300-500 px, photograph-like: smooth shapes, texture, noise), times the
dataset=imagenet train pipeline (decode + random-resized crop + flip + normalize) with 1 and 2 workers,
the decode check that runs before it, and a BiRealNet-18 train step; prints and appends to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import append_section
from omegaconf import OmegaConf
from PIL import Image

from birealnet_exp.engine.distributed import cap_cpu_isa

REPO = Path(__file__).resolve().parents[1]


def photograph(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth gradients, a few soft blobs, fine texture and sensor noise: compresses like a photo."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        image[..., c] = (
            rng.uniform(40, 200) + rng.uniform(-60, 60) * (xx / width) + rng.uniform(-60, 60) * (yy / height)
        )
    for _ in range(int(rng.integers(3, 8))):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(20, 120)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        image += blob * rng.uniform(-120, 120, 3)
    image += 15 * np.sin(xx / rng.uniform(2, 9) + yy / rng.uniform(3, 11))[..., None]
    image += rng.normal(0, 18, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_images(root: Path, count: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", count), ("val", classes)):
        for i in range(n):
            folder = root / split / f"n{i % classes:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            height, width = int(rng.integers(300, 501)), int(rng.integers(300, 501))
            Image.fromarray(photograph(rng, height, width)).save(folder / f"{i}.JPEG", quality=92)


def pipeline_img_per_s(root: Path, option: str, workers: int, size: int, batch: int) -> float:
    from birealnet_exp.data.folder import create_folder

    augment = OmegaConf.load(REPO / "conf" / "augment" / f"{option}.yaml")
    data = create_folder(
        split="train",
        batch_size=batch,
        augment=augment,
        root=str(root),
        num_classes=4,
        image_size=size,
        num_parallel_workers=workers,
        check_images=False,
    )
    iterator = data.dataset.create_tuple_iterator(num_epochs=2, output_numpy=True)
    next(iterator)  # the first batch pays for thread start-up
    start, seen = time.perf_counter(), 0
    for images, _ in iterator:
        seen += len(images)
    for images, _ in data.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
        seen += len(images)
    return seen / (time.perf_counter() - start)


def check_files_per_s(root: Path) -> float:
    from birealnet_exp.data.folder import scan_split, verify_images

    index = scan_split(root, "train", 4)
    start = time.perf_counter()
    verify_images(index, "error", "train")
    return len(index.paths) / (time.perf_counter() - start)


def train_step_img_per_s(size: int, batch: int, steps: int) -> float:
    import mindspore as ms

    from birealnet_exp.engine.losses import create_loss
    from birealnet_exp.engine.train_step import TrainStep
    from birealnet_exp.models.birealnet import birealnet18
    from birealnet_exp.optim.optimizers import adam

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.set_seed(0)
    network = birealnet18(num_classes=1000)
    step = TrainStep(network, create_loss(0.0), adam(network, lr=1e-3), 5.0)
    x = ms.Tensor(np.random.randn(batch, 3, size, size).astype(np.float32))
    y = ms.Tensor(np.random.randint(0, 1000, batch).astype(np.int32))
    step(x, y).asnumpy()  # compile
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y).asnumpy()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    cap_cpu_isa("AVX2")  # as hardware=cpu does for a run
    root = Path(tempfile.mkdtemp(prefix="data_throughput_"))
    try:
        make_images(root, args.images)
        mean_kb = np.mean([p.stat().st_size for p in (root / "train").rglob("*.JPEG")]) / 1024
        checked = check_files_per_s(root)
        rows = [
            "| what | workers | img/s |",
            "|---|---|---|",
            f"| decode check before training (`dataset.check_images`) | threads | {checked:.0f} |",
        ]
        pipeline = {}
        for option, workers in (("imagenet", 1), ("imagenet", 2), ("strong", 2)):
            pipeline[option, workers] = pipeline_img_per_s(root, option, workers, args.size, args.batch)
            rows.append(
                f"| train pipeline, `augment={option}` | {workers} | {pipeline[option, workers]:.0f} |"
            )
        step = train_step_img_per_s(args.size, args.batch, args.steps)
        rows.append(
            f"| BiRealNet-18 train step (graph mode, width 64, batch {args.batch}) | - | {step:.1f} |"
        )
        ratio = pipeline["imagenet", 2] / step
        rows.append(f"| pipeline (imagenet, 2 workers) / train step | | {ratio:.0f}x |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    command = (
        f"python bench/data_throughput.py --images {args.images} --size {args.size}"
        f" --batch {args.batch} --steps {args.steps}"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows.append(f"\nLoad average while it ran (1, 5, 15 min): {load} on {os.cpu_count()} cores.")
    append_section(
        f"Train data pipeline vs BiRealNet-18 train step, {args.size} px, {args.images} JPEGs of 300-500 px"
        f" (mean {mean_kb:.0f} KB)",
        command,
        "\n".join(rows),
    )


if __name__ == "__main__":
    main()
