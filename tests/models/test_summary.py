"""Model summary: counts by precision, MACs from output shapes, totals, memory; mode left as found."""

from __future__ import annotations

import json

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from birealnet_exp.models.binary import BinaryConv2d
from birealnet_exp.models.birealnet import birealnet18
from birealnet_exp.models.summary import model_summary

BIREALNET18_1BIT_PARAMS = 10_985_472  # all 3x3 block convs
BIREALNET18_BN_STATISTICS = 2 * (64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512 + 512)


def test_single_binary_conv_by_hand(pynative: int) -> None:
    summary = model_summary(BinaryConv2d(3, 4, kernel_size=3), (1, 3, 8, 8))
    (row,) = summary.layers
    assert row.output_shape == (-1, 4, 8, 8)
    assert (row.params_1bit, row.params_32bit) == (108, 0)
    assert (row.macs_1bit, row.macs_32bit) == (4 * 8 * 8 * 27, 0)
    assert summary.float32_bytes == 432 and summary.packed_bytes == 14


def test_precision_follows_layer_attributes_and_macs_are_per_sample(pynative: int) -> None:
    network = nn.SequentialCell(
        [
            BinaryConv2d(3, 4, binary_weights=False),  # real weights, binary input: 32-bit MACs
            nn.BatchNorm2d(4),
            BinaryConv2d(4, 2, stride=2, pad_mode="pad", padding=1),
            nn.Flatten(),
            nn.Dense(2 * 4 * 4, 5),
        ]
    )
    summary = model_summary(network, (3, 3, 8, 8))
    rows = {row.name: row for row in summary.layers}
    assert list(rows) == ["0", "1", "2", "3", "4"]
    assert (rows["0"].params_32bit, rows["0"].macs_32bit, rows["0"].macs_1bit) == (108, 4 * 64 * 27, 0)
    assert (rows["1"].params_32bit, rows["1"].nontrainable_32bit) == (16, 8)
    assert (rows["2"].params_1bit, rows["2"].macs_1bit) == (72, 2 * 16 * 36)
    assert rows["2"].output_shape == (-1, 2, 4, 4)
    assert (rows["4"].params_32bit, rows["4"].macs_32bit) == (32 * 5 + 5, 32 * 5)
    assert summary.total_params == 108 + 16 + 72 + 165
    assert summary.packed_bytes == 9 + 4 * (108 + 16 + 165)


def test_birealnet18_totals_match_parameter_counts(pynative: int) -> None:
    network = birealnet18()
    summary = model_summary(network, (1, 3, 64, 64))
    assert summary.total_params == 11_701_160 == sum(p.size for p in network.get_parameters())
    assert summary.params_1bit == BIREALNET18_1BIT_PARAMS
    assert summary.nontrainable_params == BIREALNET18_BN_STATISTICS
    # at 224 pixels the 1-bit MACs are the paper's 1.68e9 BOPs; at 64 every stage is (16/56)^2 of that
    assert summary.macs_1bit == 1_676_279_808 * 16 * 16 // (56 * 56)
    assert summary.layers[-1].output_shape == (-1, 1000)
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["totals"]["params"] == 11_701_160
    assert data["memory"]["float32_bytes"] == 4 * 11_701_160
    real_params = 11_701_160 - BIREALNET18_1BIT_PARAMS
    assert data["memory"]["packed_bytes"] == BIREALNET18_1BIT_PARAMS // 8 + 4 * real_params
    text = summary.text
    for expected in (
        "layer1.0.binary_conv",
        "BinaryConv2d",
        "(-1, 64, 16, 16)",
        "11,701,160",
        "10,985,472",
        "44.64 MiB",
        "4.04 MiB",
        "11.05x",
        "1-bit MACs",
    ):
        assert expected in text


@pytest.mark.parametrize("start_mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def test_summary_restores_context_mode_and_training_flags(start_mode: int) -> None:
    previous = ms.get_context("mode")
    network = birealnet18(num_classes=10, width=8, stem="small")
    network.set_train(True)
    network.layer1.set_train(False)
    # a training-mode forward on zeros would pull these towards 0
    network.bn1.moving_mean.set_data(ms.Tensor(np.full(8, 0.5, np.float32)))
    try:
        ms.set_context(mode=start_mode)
        model_summary(network, (1, 3, 16, 16))
        assert ms.get_context("mode") == start_mode
    finally:
        ms.set_context(mode=previous)
    assert network.training and network.layer2.training and network.layer2[0].bn1.training
    assert not network.layer1.training and not network.layer1[0].bn1.training
    assert (network.bn1.moving_mean.asnumpy() == 0.5).all()
