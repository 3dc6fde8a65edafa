"""Shared fixtures: MindSpore execution mode set per test and restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import mindspore as ms
import pytest


def _use_mode(mode: int) -> Iterator[int]:
    previous = ms.get_context("mode")
    ms.set_context(mode=mode)
    try:
        yield mode
    finally:
        ms.set_context(mode=previous)


@pytest.fixture(params=[ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def mode(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test once in graph mode and once in PyNative mode."""
    yield from _use_mode(request.param)


@pytest.fixture
def pynative() -> Iterator[int]:
    yield from _use_mode(ms.PYNATIVE_MODE)


@pytest.fixture
def graph() -> Iterator[int]:
    yield from _use_mode(ms.GRAPH_MODE)
