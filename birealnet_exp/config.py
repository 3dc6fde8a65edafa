"""Typed schema of the top-level config, registered in Hydra's ConfigStore (no heavy imports here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Task(str, Enum):
    """`task=`: what run.py does with the composed config."""

    train = "train"
    eval = "eval"
    export = "export"
    two_step = "two_step"


@dataclass
class TrainConfig:
    """`train.*`: the loop itself; values live in conf/config.yaml."""

    epochs: int = MISSING
    batch_size: int = MISSING
    clip_grad_norm: Optional[float] = MISSING
    amp_level: str = "O0"  # O0 | O1 | O2 | O3
    loss_scale: str = "none"  # none | fixed | dynamic
    loss_scale_value: Optional[float] = None  # null: 2^24 for dynamic, 1024 for fixed
    loss_scale_factor: float = 2.0
    loss_scale_window: int = 2000
    resume: Any = False  # false | true (this run folder) | a path to a last.ckpt or a run folder
    save_every: int = 1
    keep_checkpoints: int = 5
    log_every: int = 10


@dataclass
class ExportConfig:
    """`export.*`: what `task=export` writes."""

    format: str = "mindir"  # mindir (any device) | air (Ascend only) | onnx
    batch_size: int = 1
    file_name: str = "model"


@dataclass
class Config:
    """The composed experiment; the groups are typed by their own yaml files."""

    task: Task = MISSING
    seed: int = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    two_step: Any = None  # task=two_step: {step1: {...}, step2: {...}}, config merged onto each step
    model: Any = MISSING
    dataset: Any = MISSING
    augment: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    hardware: Any = MISSING


def register_configs() -> None:
    """Store the schema as `base_config`, the first entry of conf/config.yaml's defaults list."""
    ConfigStore.instance().store(name="base_config", node=Config)
