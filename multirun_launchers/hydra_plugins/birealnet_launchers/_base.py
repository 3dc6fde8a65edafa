"""What the three launchers share: Hydra's setup() bookkeeping (light: the plugin scan skips `_` modules)."""

from typing import Any

from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class BaseLauncher(Launcher):
    """Keeps the launcher's keys and what `setup` hands over; subclasses implement `launch` in _core."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
