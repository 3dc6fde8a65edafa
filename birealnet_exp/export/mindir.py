"""Export a network as a deployable file (MindIR; AIR on Ascend); check it loads back to equal logits."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from birealnet_exp.errors import UsageError

FORMATS = {"mindir": "MINDIR", "air": "AIR", "onnx": "ONNX"}


def export_network(network: Any, sample: np.ndarray, path: Path, fmt: str = "mindir") -> Path:
    """Write `network` in eval mode, traced on `sample`'s shape, to `path` (suffix from the format);
    atomically. Formats MindSpore cannot produce here raise UsageError naming the alternative."""
    import mindspore as ms

    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise UsageError(f"export.format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path).with_suffix(f".{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_stem = path.parent / f".{path.stem}.tmp"
    network.set_train(False)
    try:
        ms.export(network, ms.Tensor(sample), file_name=str(tmp_stem), file_format=FORMATS[fmt])
    except (RuntimeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0]
        hint = {
            "air": "AIR needs device_target Ascend (hardware=ascend); use export.format=mindir",
            "onnx": "use export.format=mindir",
        }.get(fmt, "check the network")
        raise UsageError(
            f"MindSpore cannot export this network as {fmt.upper()} here ({first_line}): {hint}"
        ) from None
    written = tmp_stem.with_name(f"{tmp_stem.name}.{fmt}")
    os.replace(written, path)
    return path


def check_mindir(path: Path, network: Any, sample: np.ndarray) -> float:
    """Load a MindIR file back (mindspore.load + nn.GraphCell) and return the max |logit difference|
    against `network` in eval mode on `sample`."""
    import mindspore as ms
    from mindspore import nn

    graph = nn.GraphCell(ms.load(str(path)))
    network.set_train(False)
    expected = network(ms.Tensor(sample)).asnumpy()
    loaded = graph(ms.Tensor(sample)).asnumpy()
    if loaded.shape != expected.shape:
        raise RuntimeError(f"{path} gives logits of shape {loaded.shape}, the network {expected.shape}")
    return float(np.max(np.abs(loaded.astype(np.float64) - expected)))
