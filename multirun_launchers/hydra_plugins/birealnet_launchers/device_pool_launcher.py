"""Hydra launcher: a device pool; the jobs of a sweep run at the same time, each on its own devices."""

from collections.abc import Sequence

from hydra.core.utils import JobReturn

from ._base import BaseLauncher


class DevicePoolLauncher(BaseLauncher):
    """`hydra/launcher=device_pool`; the keys are those of `config.DevicePoolLauncherConf`."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core

        return _core.launch_device_pool(self, job_overrides, initial_job_idx)
