"""Hydra launcher: runs each job through MindSpore's msrun (dynamic cluster)."""

from collections.abc import Sequence

from hydra.core.utils import JobReturn

from ._base import BaseLauncher


class MsrunLauncher(BaseLauncher):
    """`hydra/launcher=msrun`; the keys are those of `config.MsrunLauncherConf`."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core

        return _core.launch_msrun(self, job_overrides, initial_job_idx)
