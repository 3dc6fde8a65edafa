"""Bad data gets one clear UsageError (or is skipped and counted), never a hang or a crash."""

import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from birealnet_exp.data.folder import create_folder, image_problem
from birealnet_exp.errors import UsageError

from .images import photo

REPO = Path(__file__).resolve().parents[2]
NONE = OmegaConf.load(REPO / "conf" / "augment" / "none.yaml")


def build(root, split="train", **kwargs):
    kwargs = {"num_classes": 3, "image_size": 32, "num_parallel_workers": 2, **kwargs}
    return create_folder(
        split=split, batch_size=4, augment=NONE, root=None if root is None else str(root), **kwargs
    )


def jpeg_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo(np.random.default_rng(seed), 0, 48, 64)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "root,match",
    [
        (None, "needs a folder: pass dataset.root="),
        ("does/not/exist", "is not a folder"),
    ],
)
def test_missing_root(root, match):
    with pytest.raises(UsageError, match=match):
        build(root)


def test_missing_split_folder(image_folder):
    shutil.rmtree(image_folder / "val")
    with pytest.raises(UsageError, match=r"val is missing: dataset.root needs a val/ folder"):
        build(image_folder, "val")


def test_split_without_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "loose.jpg").write_bytes(jpeg_bytes())
    with pytest.raises(UsageError, match="has no class folders"):
        build(tmp_path)


def test_empty_class_folder_is_named(image_folder):
    (image_folder / "train" / "emu").mkdir()
    (image_folder / "train" / "emu" / "notes.txt").write_text("no images here")
    with pytest.raises(UsageError, match=r"class folder .*train/emu has no images"):
        build(image_folder, num_classes=4)


def test_class_count_that_disagrees(image_folder):
    with pytest.raises(
        UsageError, match=r"has 3 class folders but dataset.num_classes=1000: set dataset.num_classes=3"
    ):
        build(image_folder, num_classes=1000)
    assert build(image_folder, num_classes=None).num_classes == 3  # null: the class folders found


def test_val_classes_that_differ_from_train(image_folder):
    (image_folder / "val" / "fox").rename(image_folder / "val" / "wolf")
    with pytest.raises(UsageError, match=r"different class folders \(e.g. fox, wolf\)"):
        build(image_folder, "val")


def bad_files(folder: Path) -> dict[str, str]:
    """Write one of each bad file into `folder`; returns name -> expected reason."""
    good = jpeg_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "garbage.jpg").write_bytes(
        np.random.default_rng(0).integers(0, 255, 900, dtype=np.uint8).tobytes()
    )
    (folder / "empty.jpg").write_bytes(b"")
    # a valid header, then corrupt data: MindSpore's own JPEG decoder crashes the process on this one
    rng = np.random.default_rng(1)
    corrupt = np.frombuffer(good, np.uint8).copy()
    corrupt[300:-2] = rng.integers(0, 255, len(good) - 302, dtype=np.uint8)
    (folder / "corrupt.jpg").write_bytes(corrupt.tobytes())
    return {
        "truncated.jpg": "truncated or corrupt",
        "garbage.jpg": "not an image",
        "empty.jpg": "empty file",
        "corrupt.jpg": "truncated or corrupt",
    }


def test_image_problem_names_each_kind(tmp_path):
    for name, reason in bad_files(tmp_path).items():
        assert reason in image_problem(str(tmp_path / name)), name
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes())
    assert image_problem(str(good)) is None


def test_bad_image_policy_error_names_the_file(image_folder):
    bad_files(image_folder / "train" / "dog")
    with pytest.raises(
        UsageError, match=r"bad image .*/train/dog/\w+\.jpg: .* \(and 3 more\): .*on_bad_image=skip"
    ):
        build(image_folder)


def test_bad_image_policy_skip_leaves_them_out_and_counts(image_folder, caplog):
    bad_files(image_folder / "train" / "dog")
    with caplog.at_level(logging.WARNING):
        data = build(image_folder, on_bad_image="skip")
    assert data.num_samples == 24  # the 4 bad files are left out of 28
    assert "skipped 4 bad images of 28" in caplog.text
    images, labels = next(data.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert images.shape == (4, 3, 32, 32)
    with pytest.raises(UsageError, match="on_bad_image must be one of error|skip"):
        build(image_folder, on_bad_image="ignore")


def test_grey_cmyk_rgba_palette_png_and_mislabelled_images_become_rgb(tmp_path):
    rgb = photo(np.random.default_rng(0), 1, 45, 60)
    variants = {
        "grey.jpg": (Image.fromarray(rgb).convert("L"), "JPEG"),
        "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), "JPEG"),
        "rgba.png": (Image.fromarray(rgb).convert("RGBA"), "PNG"),
        "grey.png": (Image.fromarray(rgb).convert("L"), "PNG"),
        "palette.png": (Image.fromarray(rgb).convert("P"), "PNG"),
        "png_named.JPEG": (Image.fromarray(rgb), "PNG"),
        "plain.bmp": (Image.fromarray(rgb), "BMP"),
    }
    for split in ("train", "val"):
        for c in ("a", "b"):
            folder = tmp_path / split / c
            folder.mkdir(parents=True)
            for name, (image, fmt) in variants.items():
                image.save(folder / name, fmt)
    for split in ("train", "val"):
        data = build(tmp_path, split, num_classes=2)
        assert data.num_samples == 14
        for images, _ in data.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
            assert images.shape[1:] == (3, 32, 32) and np.isfinite(images).all()


def test_stray_non_image_files_are_ignored(image_folder, caplog):
    for name in (".DS_Store", "README.txt", "labels.csv", "Thumbs.db"):
        (image_folder / "train" / "cat" / name).write_text("not an image")
    with caplog.at_level(logging.INFO):
        data = build(image_folder)
    assert data.num_samples == 24 and "ignored 4 files without an image extension" in caplog.text


def test_cli_bad_root_is_one_line_and_exit_2(run_py, tmp_path):
    root, run = tmp_path / "nowhere", tmp_path / "run"
    proc = run_py(
        "dataset=imagenet", f"dataset.root={root}", f"hydra.run.dir={run}", returncode=2, timeout=120
    )
    assert "nowhere is not a folder: pass the folder holding train/ and val/" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_all_images_bad_under_skip_is_an_error_and_the_policy_is_checked_up_front(tmp_path):
    for split in ("train",):
        folder = tmp_path / split / "only"
        folder.mkdir(parents=True)
        bad_files(folder)
    with pytest.raises(UsageError, match=r"all 4 images are bad .*: fix the folder"):
        build(tmp_path, num_classes=1, on_bad_image="skip")
    with pytest.raises(UsageError, match="on_bad_image must be one of"):
        build(tmp_path, num_classes=1, on_bad_image="warn", check_images=False)
