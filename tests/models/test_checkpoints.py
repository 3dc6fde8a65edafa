"""Loading our and the seed's checkpoints, conversion, and the errors for bad files and shapes."""

from __future__ import annotations

import logging
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor

from birealnet_exp.models.birealnet import birealnet18
from birealnet_exp.models.checkpoints import (
    CheckpointError,
    convert_seed_checkpoint,
    load_pretrained,
    read_checkpoint,
)

SMALL = {"num_classes": 10, "width": 8, "stem": "small"}
FAKE_TRAINING_STATE = {
    "adam_m.model.conv1.weight": (8, 3, 3, 3),
    "adam_v.model.conv1.weight": (8, 3, 3, 3),
    "moments.model.fc.weight": (10, 64),
    "scale_sense": (),
    "global_step": (1,),
    "learning_rate": (),
    "momentum": (),
}


def _source_network() -> ms.nn.Cell:
    """A small network with every parameter, BN statistics included, set to random values."""
    network = birealnet18(**SMALL)
    rng = np.random.RandomState(0)
    for param in network.get_parameters():
        values = rng.rand(*param.shape) + 0.5 if "variance" in param.name else rng.randn(*param.shape) * 0.3
        param.set_data(Tensor(values.astype(np.float32)))
    network.set_train(False)
    return network


def _save_seed_checkpoint(network: ms.nn.Cell, path: Path) -> None:
    entries = [{"name": f"model.{name}", "data": param} for name, param in network.parameters_dict().items()]
    entries += [
        {"name": key, "data": Parameter(Tensor(np.ones(shape, np.float32)), name=key)}
        for key, shape in FAKE_TRAINING_STATE.items()
    ]
    ms.save_checkpoint(entries, str(path))


def _logits(network: ms.nn.Cell) -> np.ndarray:
    network.set_train(False)
    return network(Tensor(np.random.RandomState(9).randn(2, 3, 16, 16).astype(np.float32))).asnumpy()


def test_seed_checkpoint_loads_with_prefix_stripped_and_training_state_ignored(
    tmp_path: Path, pynative: int, caplog: pytest.LogCaptureFixture
) -> None:
    source = _source_network()
    path = tmp_path / "seed.ckpt"
    _save_seed_checkpoint(source, path)

    target = birealnet18(**SMALL)
    with caplog.at_level(logging.INFO, logger="birealnet_exp.models.checkpoints"):
        report = load_pretrained(target, path)

    assert report.stripped_prefix
    assert sorted(report.loaded) == sorted(source.parameters_dict())
    assert report.missing == []
    assert sorted(report.ignored) == sorted(FAKE_TRAINING_STATE)
    assert "loaded 106 parameters, stripped the 'model.' prefix, ignored 7 non-network entries" in caplog.text
    np.testing.assert_array_equal(_logits(target), _logits(source))


def test_own_checkpoint_loads_plainly(tmp_path: Path, pynative: int) -> None:
    source = _source_network()
    path = tmp_path / "own.ckpt"
    ms.save_checkpoint(source, str(path))
    target = birealnet18(**SMALL, pretrained=str(path))
    np.testing.assert_array_equal(_logits(target), _logits(source))
    report = load_pretrained(birealnet18(**SMALL), path)
    assert not report.stripped_prefix and report.ignored == [] and len(report.loaded) == 106


def test_convert_seed_checkpoint_writes_network_only(tmp_path: Path, pynative: int) -> None:
    source = _source_network()
    seed, clean = tmp_path / "seed.ckpt", tmp_path / "clean.ckpt"
    _save_seed_checkpoint(source, seed)
    report = convert_seed_checkpoint(seed, clean)
    assert report.stripped_prefix and sorted(report.ignored) == sorted(FAKE_TRAINING_STATE)
    assert sorted(read_checkpoint(clean)) == sorted(source.parameters_dict())
    assert not list(tmp_path.glob("*.tmp*"))

    checked = tmp_path / "checked.ckpt"
    convert_seed_checkpoint(seed, checked, network=birealnet18(**SMALL))
    for path in (clean, checked):
        target = birealnet18(**SMALL)
        assert not load_pretrained(target, path, strict=True).stripped_prefix
        np.testing.assert_array_equal(_logits(target), _logits(source))


def test_shape_mismatch_names_key_shapes_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "ten_classes.ckpt"
    _save_seed_checkpoint(_source_network(), path)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(birealnet18(num_classes=100, width=8, stem="small"), path)
    message = str(info.value)
    assert "'model.fc.weight' has shape (10, 64)" in message
    assert "'fc.weight' has shape (100, 64)" in message
    assert "build the model with the checkpoint's settings" in message


def test_missing_parameters_are_reported_and_strict_raises(tmp_path: Path) -> None:
    source = _source_network()
    path = tmp_path / "partial.ckpt"
    params = source.parameters_dict()
    entries = [{"name": name, "data": param} for name, param in params.items() if not name.startswith("fc.")]
    ms.save_checkpoint(entries, str(path))
    report = load_pretrained(birealnet18(**SMALL), path)
    assert sorted(report.missing) == ["fc.bias", "fc.weight"]
    with pytest.raises(CheckpointError, match="lacks 2 network parameters"):
        load_pretrained(birealnet18(**SMALL), path, strict=True)


def test_unrelated_checkpoint_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    ms.save_checkpoint(
        [{"name": "encoder.w", "data": Parameter(Tensor(np.ones(3, np.float32)), name="w")}], str(path)
    )
    with pytest.raises(CheckpointError, match="shares no parameter name with the network"):
        load_pretrained(birealnet18(**SMALL), path)


def _one_line_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_pretrained(birealnet18(**SMALL), path)
    message = str(info.value)
    assert "\n" not in message and "C++" not in message
    # no MindSpore traceback chained under ours
    error = info.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return message


def test_garbage_file_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(b"\x00not a checkpoint\xff" * 64)
    assert "cannot be read: the file is corrupt, truncated" in _one_line_error(path)


def test_truncated_file_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "truncated.ckpt"
    ms.save_checkpoint(_source_network(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "cannot be read: the file is corrupt, truncated" in _one_line_error(path)


def test_missing_and_empty_files_are_one_clear_line(tmp_path: Path) -> None:
    assert "does not exist" in _one_line_error(tmp_path / "nowhere.ckpt")
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    assert "is empty (0 bytes)" in _one_line_error(empty)
