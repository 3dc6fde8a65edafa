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


@dataclass
class TrainConfig:
    """`train.*`: the loop itself; values live in conf/config.yaml."""

    epochs: int = MISSING
    batch_size: int = MISSING
    clip_grad_norm: Optional[float] = MISSING
    resume: Any = False  # false | true (this run folder) | a path to a last.ckpt
    log_every: int = 10


@dataclass
class Config:
    """The composed experiment; the groups are typed by their own yaml files."""

    task: Task = MISSING
    seed: int = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    model: Any = MISSING
    dataset: Any = MISSING
    augment: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    hardware: Any = MISSING


def register_configs() -> None:
    """Store the schema as `base_config`, the first entry of conf/config.yaml's defaults list."""
    ConfigStore.instance().store(name="base_config", node=Config)
