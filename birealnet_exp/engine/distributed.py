"""Distributed context of one process: device, execution mode, rank and group size.

The launchers (hydra_plugins.birealnet_launchers) leave the environment this reads: `rank_table` sets
RANK_TABLE_FILE / RANK_ID / RANK_SIZE / DEVICE_ID (HCCL on Ascend), `msrun` sets MS_ROLE / MS_WORKER_NUM /
MS_SCHED_HOST / MS_SCHED_PORT / MS_NODE_ID (MindSpore's dynamic cluster, any device).
"""

import hashlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.experimental.callback import Callback

from birealnet_exp.errors import UsageError

log = logging.getLogger(__name__)

_TARGETS = {"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}


class DeviceUnavailableError(UsageError):
    """The hardware option asks for a device this machine (or this MindSpore build) does not have."""


@dataclass(frozen=True)
class Dist:
    """Where this process runs and which rank it is."""

    device_target: str = "CPU"
    device_id: int = 0
    rank: int = 0
    group_size: int = 1
    local_rank: int = 0
    launch: str = "single"  # single | rank_table | dynamic_cluster
    backend: str | None = None  # hccl | nccl | mccl when distributed

    @property
    def is_main(self) -> bool:
        """Rank 0 writes metrics, checkpoints, summaries and plots."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.group_size > 1


def _get(hardware: Any, key: str, default: Any = None) -> Any:
    if hardware is None:
        return default
    if isinstance(hardware, Mapping) or hasattr(hardware, "get"):
        value = hardware.get(key, default)
    else:
        value = getattr(hardware, key, default)
    return default if value is None else value


def normalize_target(device_target: str) -> str:
    """'cpu' | 'gpu' | 'ascend' in any case -> MindSpore's 'CPU' | 'GPU' | 'Ascend'."""
    target = _TARGETS.get(str(device_target).strip().lower())
    if target is None:
        raise UsageError(f"hardware.device_target={device_target!r} is not a device: use CPU, GPU or Ascend")
    return target


def launch_mode(env: Mapping[str, str] | None = None) -> str:
    """How this process was started: 'dynamic_cluster' (msrun), 'rank_table' (HCCL) or 'single'."""
    env = os.environ if env is None else env
    if env.get("MS_ROLE") == "MS_WORKER" and env.get("MS_SCHED_PORT"):
        return "dynamic_cluster"
    if (
        env.get("RANK_TABLE_FILE")
        and env.get("RANK_ID") is not None
        and int(env.get("RANK_SIZE", "1") or 1) > 1
    ):
        return "rank_table"
    return "single"


def cap_cpu_isa(isa: str | None) -> None:
    """Cap oneDNN's CPU ISA (ONEDNN_MAX_CPU_ISA) unless the environment already sets it.

    On this project's AVX-512 machines MindSpore's oneDNN picks a reference-speed convolution for its
    plain NCHW tensors; capped at AVX2 it picks the JIT kernels, about 10x faster (bench/cpu_isa.py).
    """
    if isa:
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", str(isa))


def check_device(device_target: str) -> None:
    """Raise DeviceUnavailableError (one line) unless MindSpore can use `device_target` here."""
    if device_target == "CPU":
        return
    import mindspore as ms

    try:
        available = bool(ms.hal.is_available(device_target))
    except Exception:
        available = False
    if not available:
        raise DeviceUnavailableError(
            f"hardware.device_target={device_target} but this machine has no usable {device_target} for "
            f"mindspore {ms.__version__}: run on a machine that has one, with the matching mindspore "
            "build, or use hardware=cpu (or cpu2)"
        )


def setup(hardware: Any) -> Dist:
    """Set MindSpore's context from `cfg.hardware` and the environment a launcher left; return a Dist.

    Distributed (a launcher set the rank environment): `init("hccl")` with a rank table, `init()` in a
    dynamic cluster, then data-parallel context with gradient mean over all ranks.
    """
    device_target = normalize_target(_get(hardware, "device_target", "CPU"))
    mode_name = str(_get(hardware, "mode", "graph")).lower()
    if mode_name not in ("graph", "pynative"):
        raise UsageError(f"hardware.mode={mode_name!r}: use graph or pynative")
    launch = launch_mode()
    if launch == "rank_table" and device_target != "Ascend":
        raise DeviceUnavailableError(
            f"a rank table (RANK_TABLE_FILE) starts HCCL, which needs Ascend, but hardware.device_target="
            f"{device_target}: use hydra/launcher=msrun for {device_target}"
        )
    cap_cpu_isa(_get(hardware, "onednn_max_cpu_isa"))  # before mindspore loads oneDNN
    check_device(device_target)
    device_id = int(os.environ.get("DEVICE_ID", _get(hardware, "device_id", 0)) or 0)

    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE if mode_name == "graph" else ms.PYNATIVE_MODE)
    if device_target == "CPU":
        ms.set_device("CPU")
    else:
        ms.set_device(device_target, device_id)
    if launch == "single":
        wanted = int(_get(hardware, "num_devices", 1))
        if wanted > 1:
            log.warning(
                "hardware.num_devices=%d but this process was started alone (no rank environment): "
                "training on one device. Multi-device options launch their ranks through their own "
                "launcher; another hydra/launcher on the command line replaces it",
                wanted,
            )
        return Dist(device_target=device_target, device_id=device_id)

    from mindspore.communication import get_group_size, get_local_rank, get_rank, init

    if launch == "rank_table":
        backend = "hccl"
        init("hccl")
    else:
        backend = {"Ascend": "hccl", "GPU": "nccl", "CPU": "mccl"}[device_target]
        init()
    rank, group_size = int(get_rank()), int(get_group_size())
    try:
        local_rank = int(get_local_rank())
    except Exception:
        local_rank = int(os.environ.get("BIREALNET_LOCAL_RANK", rank))
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(
        parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=group_size
    )
    return Dist(device_target, device_id, rank, group_size, local_rank, launch, backend)


def wants_sync_batchnorm(dist: Dist) -> bool:
    """Multi-card Ascend normalises over the global batch, as the seed does (SyncBatchNorm, HCCL)."""
    return dist.device_target == "Ascend" and dist.group_size > 1


def sync_batchnorm(network: Any, process_groups: Any = None) -> int:
    """Replace every BatchNorm2d of `network` by a SyncBatchNorm in place; return how many were replaced.

    Each SyncBatchNorm takes over its BatchNorm's own Parameter objects (gamma, beta, moving mean and
    variance: names, values and the optimizer's references unchanged, so checkpoints load either way) and
    its eps, momentum and use_batch_statistics. `process_groups` is SyncBatchNorm's: None syncs over all
    ranks (needs an initialised communication group); 0 syncs nothing (a plain batch norm).
    """
    from mindspore import nn

    replaced = 0
    for _, parent in list(network.cells_and_names()):
        for name, child in list(parent.name_cells().items()):
            if type(child) is not nn.BatchNorm2d:
                continue
            sync = nn.SyncBatchNorm(
                child.num_features,
                eps=child.eps,
                momentum=1.0 - child.momentum,  # _BatchNorm stores 1 - momentum
                affine=bool(child.gamma.requires_grad),
                use_batch_statistics=child.use_batch_statistics,
                process_groups=process_groups,
            )
            for key in ("gamma", "beta", "moving_mean", "moving_variance"):
                setattr(sync, key, getattr(child, key))
            sync.set_train(child.training)
            if isinstance(parent, (nn.SequentialCell, nn.CellList)):
                parent[int(name)] = sync
            else:
                parent.insert_child_to_cell(name, sync)
            replaced += 1
    return replaced


def weights_digest(network: Any) -> str:
    """A short hash of the trainable parameters (names and values): equal on every rank of a data-parallel
    job whose gradients are averaged. BN moving statistics are left out: each rank keeps its own."""
    digest = hashlib.sha256()
    for param in network.trainable_params():
        digest.update(param.name.encode())
        digest.update(param.asnumpy().tobytes())
    return digest.hexdigest()[:16]


class DeviceCheck(Callback):
    """Hydra callback of the multi-device hardware options (`hydra.callbacks.device_check`): checks
    hardware.device_target in the launching process, so a missing GPU or Ascend is one line (exit 2)
    before any rank starts, when one of this project's launchers starts the ranks on this machine.
    Hydra only warns about a callback's exceptions, hence the SystemExit.
    `~hydra.callbacks.device_check` on the command line turns it off."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        launcher = str(config.hydra.launcher.get("_target_", ""))
        if not launcher.startswith("hydra_plugins.birealnet_launchers."):
            return  # e.g. submitit_slurm: the ranks run on other machines, not here
        try:
            check_device(normalize_target(_get(config.get("hardware"), "device_target", "CPU")))
        except UsageError as error:
            print(error, file=sys.stderr, flush=True)
            raise SystemExit(2) from None
