"""Larq-style model summary: parameters, MACs and memory per layer, split by 1-bit and 32-bit precision."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import mindspore as ms
import numpy as np
from mindspore import nn

HEADERS = ("Layer", "Type", "Output shape", "1-bit params", "32-bit params", "1-bit MACs", "32-bit MACs")


@dataclass
class LayerSummary:
    """One layer: its own parameters and MACs by precision; output shape per sample (-1 for the batch)."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    params_1bit: int = 0
    params_32bit: int = 0
    nontrainable_32bit: int = 0
    macs_1bit: int = 0
    macs_32bit: int = 0


@dataclass
class ModelSummary:
    """Per-layer rows, totals and memory of a network for one input shape."""

    input_shape: tuple[int, ...]
    layers: list[LayerSummary] = field(default_factory=list)

    @property
    def params_1bit(self) -> int:
        return sum(layer.params_1bit for layer in self.layers)

    @property
    def params_32bit(self) -> int:
        return sum(layer.params_32bit for layer in self.layers)

    @property
    def total_params(self) -> int:
        return self.params_1bit + self.params_32bit

    @property
    def nontrainable_params(self) -> int:
        return sum(layer.nontrainable_32bit for layer in self.layers)

    @property
    def macs_1bit(self) -> int:
        return sum(layer.macs_1bit for layer in self.layers)

    @property
    def macs_32bit(self) -> int:
        return sum(layer.macs_32bit for layer in self.layers)

    @property
    def float32_bytes(self) -> int:
        """Storage with every parameter as float32."""
        return 4 * self.total_params

    @property
    def packed_bytes(self) -> int:
        """Storage with 1-bit weights bit-packed (8 per byte) and the rest float32."""
        return -(-self.params_1bit // 8) + 4 * self.params_32bit

    @property
    def compression_ratio(self) -> float:
        return self.float32_bytes / self.packed_bytes if self.packed_bytes else 1.0

    def to_dict(self) -> dict:
        """JSON-ready dict: input_shape, layers, totals, memory (bytes)."""
        return {
            "input_shape": list(self.input_shape),
            "layers": [
                dict(
                    asdict(layer),
                    output_shape=None if layer.output_shape is None else list(layer.output_shape),
                )
                for layer in self.layers
            ],
            "totals": {
                "params": self.total_params,
                "params_1bit": self.params_1bit,
                "params_32bit": self.params_32bit,
                "trainable_params": self.total_params - self.nontrainable_params,
                "nontrainable_params": self.nontrainable_params,
                "macs_1bit": self.macs_1bit,
                "macs_32bit": self.macs_32bit,
            },
            "memory": {
                "float32_bytes": self.float32_bytes,
                "packed_bytes": self.packed_bytes,
                "compression_ratio": self.compression_ratio,
            },
        }

    @property
    def text(self) -> str:
        """The summary as a plain-text table with totals and memory lines."""
        rows = [HEADERS] + [
            (
                layer.name,
                layer.type,
                _shape_text(layer.output_shape),
                _count(layer.params_1bit),
                _count(layer.params_32bit),
                _count(layer.macs_1bit),
                _count(layer.macs_32bit),
            )
            for layer in self.layers
        ]
        total = (
            "Total",
            "",
            "",
            _count(self.params_1bit),
            _count(self.params_32bit),
            _count(self.macs_1bit),
            _count(self.macs_32bit),
        )
        widths = [max(len(row[i]) for row in rows + [total]) for i in range(len(HEADERS))]

        def line(row: tuple[str, ...]) -> str:
            cells = [row[i].ljust(widths[i]) if i < 3 else row[i].rjust(widths[i]) for i in range(len(row))]
            return "  ".join(cells).rstrip()

        rule = "-" * len(line(HEADERS))
        out = [
            f"Model summary for input shape {tuple(self.input_shape)} (MACs per sample)",
            rule,
            line(HEADERS),
            rule,
        ]
        out += [line(row) for row in rows[1:]]
        out += [rule, line(total), rule]
        out += [
            f"Total params: {self.total_params:,} (1-bit {self.params_1bit:,}, 32-bit {self.params_32bit:,})",
            f"Trainable params: {self.total_params - self.nontrainable_params:,}; "
            f"non-trainable (32-bit BN statistics): {self.nontrainable_params:,}",
            f"MACs: 1-bit {self.macs_1bit:,}, 32-bit {self.macs_32bit:,}",
            f"Memory: float32 {_bytes_text(self.float32_bytes)}, bit-packed {_bytes_text(self.packed_bytes)} "
            f"(1-bit weights packed, rest float32), ratio {self.compression_ratio:.2f}x",
        ]
        return "\n".join(out)


def _count(value: int) -> str:
    return f"{value:,}" if value else "0"


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else "(" + ", ".join(str(dim) for dim in shape) + ")"


def _bytes_text(size: int) -> str:
    kib = size / 1024
    return f"{kib:,.2f} KiB" if kib < 1024 else f"{kib / 1024:,.2f} MiB"


def _layer_cells(network: nn.Cell) -> list[tuple[str, nn.Cell]]:
    """Cells that own parameters or have no children; quantizers (with `precision`) are parts of a layer."""
    layers = []
    for name, cell in network.cells_and_names():
        if hasattr(cell, "precision"):
            continue
        owns_params = bool(list(cell.get_parameters(expand=False)))
        if owns_params or not cell.name_cells():
            layers.append((name or type(cell).__name__, cell))
    return layers


def _output_shapes(network: nn.Cell, cells: list[nn.Cell], input_shape: tuple[int, ...]) -> list[list[tuple]]:
    """Run one forward in PyNative eval mode on zeros; return each cell's output shapes, one per call."""
    shapes: list[list[tuple]] = [[] for _ in cells]
    previous_mode = ms.get_context("mode")
    training = [(cell, cell.training) for _, cell in network.cells_and_names()]
    handles = []
    try:
        ms.set_context(mode=ms.PYNATIVE_MODE)
        network.set_train(False)
        for index, cell in enumerate(cells):

            def hook(_cell: nn.Cell, _inputs: tuple, output: object, index: int = index) -> None:
                if hasattr(output, "shape"):
                    shapes[index].append(tuple(output.shape))

            handles.append(cell.register_forward_hook(hook))
        network(ms.Tensor(np.zeros(input_shape, np.float32)))
    finally:
        for handle in handles:
            handle.remove()
        for cell, flag in training:  # pre-order, so a parent's set_train never overrides a child's flag
            cell.set_train(flag)
        ms.set_context(mode=previous_mode)
    return shapes


def model_summary(network: nn.Cell, input_shape: tuple[int, ...]) -> ModelSummary:
    """Summarise `network` for an input of `input_shape` (N, C, H, W); MACs are per sample.

    Parameters count as 1-bit where their layer says so (`weight_precision` for `weight`); MACs of a layer
    with a `weight` of 2+ dims are 1-bit when both its `input_precision` and `weight_precision` are 1.
    """
    input_shape = tuple(int(dim) for dim in input_shape)
    batch = input_shape[0]
    named_cells = _layer_cells(network)
    shapes = _output_shapes(network, [cell for _, cell in named_cells], input_shape)
    summary = ModelSummary(input_shape=input_shape)
    for (name, cell), calls in zip(named_cells, shapes, strict=True):
        row = LayerSummary(
            name=name, type=type(cell).__name__, output_shape=(-1,) + calls[-1][1:] if calls else None
        )
        for param in cell.get_parameters(expand=False):
            short = param.name.rsplit(".", 1)[-1]
            size = int(np.prod(param.shape))
            if getattr(cell, f"{short}_precision", 32) == 1:
                row.params_1bit += size
            else:
                row.params_32bit += size
                if not param.requires_grad:
                    row.nontrainable_32bit += size
            if short == "weight" and len(param.shape) >= 2:
                # each output element costs one MAC per weight of its output channel
                per_output = size // int(param.shape[0])
                macs = sum(int(np.prod(shape)) // batch for shape in calls) * per_output
                if getattr(cell, "input_precision", 32) == 1 and getattr(cell, "weight_precision", 32) == 1:
                    row.macs_1bit += macs
                else:
                    row.macs_32bit += macs
        summary.layers.append(row)
    return summary
