"""Fixtures of the data tests: a small generated JPEG folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from .images import make_folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "images")
