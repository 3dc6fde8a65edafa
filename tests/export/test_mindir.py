"""MindIR export loads back to the same logits; formats MindSpore cannot write here fail in one line."""

import numpy as np
import pytest

from birealnet_exp.errors import UsageError
from birealnet_exp.export.mindir import check_mindir, export_network
from birealnet_exp.models.birealnet import birealnet18


@pytest.fixture(scope="module")
def network():
    return birealnet18(num_classes=10, width=8, stem="small")


def sample(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 16, 16)).astype(np.float32)


def test_mindir_export_round_trips(network, tmp_path):
    path = export_network(network, sample(), tmp_path / "model", "mindir")
    assert path == tmp_path / "model.mindir" and path.stat().st_size > 0
    assert check_mindir(path, network, sample()) < 1e-5
    assert not list(tmp_path.glob(".*"))  # the temporary file was renamed


@pytest.mark.parametrize("fmt, message", [("onnx", "ONNX"), ("air", "Ascend")])
def test_formats_this_cpu_cannot_write_are_one_clear_error(network, tmp_path, fmt, message):
    with pytest.raises(UsageError, match=message) as error:
        export_network(network, sample(1), tmp_path / "model", fmt)
    assert "\n" not in str(error.value) and "export.format=mindir" in str(error.value)
    assert not list(tmp_path.iterdir())


def test_unknown_format_lists_the_formats(network, tmp_path):
    with pytest.raises(UsageError, match="mindir, air, onnx"):
        export_network(network, sample(1), tmp_path / "model", "tflite")
