"""Hydra launcher: each job as one process per device of this server in an Ascend rank table (HCCL)."""

from collections.abc import Sequence

from hydra.core.utils import JobReturn

from ._base import BaseLauncher


class RankTableLauncher(BaseLauncher):
    """`hydra/launcher=rank_table`; the keys are those of `config.RankTableLauncherConf`."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core

        return _core.launch_rank_table(self, job_overrides, initial_job_idx)
