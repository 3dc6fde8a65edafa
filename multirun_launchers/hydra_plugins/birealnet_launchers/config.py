"""Config schemas of the birealnet launchers, registered in ConfigStore under `hydra/launcher`."""

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore

_PACKAGE = "hydra_plugins.birealnet_launchers"


@dataclass
class RankTableLauncherConf:
    """One process per device of an Ascend rank table (HCCL), for each Hydra job."""

    _target_: str = f"{_PACKAGE}.rank_table_launcher.RankTableLauncher"
    # hccl_tools JSON; null: generate one from `devices` (+ `device_ips` or `hccn_conf`) into the job folder
    rank_table: Optional[str] = "${oc.env:RANK_TABLE_FILE,null}"
    devices: Optional[list[int]] = None
    device_ips: Optional[list[str]] = None
    hccn_conf: str = "/etc/hccn.conf"
    server_id: Optional[str] = None  # for a generated table; default: this host's IP
    # several servers: which one this is (default: the server whose server_id is one of this host's IPs)
    server_index: Optional[int] = None
    num_devices: Optional[int] = None  # expected total device count of the table, checked when set
    bind_cores: bool = False  # rank i of k: taskset-like binding to cores [i*n/k, (i+1)*n/k - 1]
    env: dict[str, str] = field(default_factory=dict)  # extra environment for every rank
    timeout_s: Optional[float] = None  # a job running longer is stopped and failed
    kill_grace_s: float = 5.0  # SIGTERM, then SIGKILL after this many seconds
    flat_single_job: bool = False  # a sweep of one job runs in hydra.sweep.dir itself, without a 0/ subfolder


@dataclass
class MsrunLauncherConf:
    """MindSpore dynamic cluster through MindSpore's own `msrun`, for each Hydra job."""

    _target_: str = f"{_PACKAGE}.msrun_launcher.MsrunLauncher"
    worker_num: int = 2  # ranks in all
    local_worker_num: int = "${.worker_num}"  # type: ignore[assignment]  # ranks on this node
    master_addr: str = "127.0.0.1"
    master_port: Optional[int] = None  # null: a free port per job (single node only)
    node_rank: int = 0  # this node's index; rank ids are node_rank * local_worker_num + i
    cluster_time_out: int = 600
    bind_core: bool = False
    log_dir: Optional[str] = None  # msrun's scheduler.log / worker_N.log; null: <job folder>/msrun
    msrun: Optional[str] = None  # the msrun executable; null: next to this Python, else on PATH
    extra_args: list[str] = field(default_factory=list)  # more msrun options, e.g. ["--bind_numa=True"]
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: Optional[float] = None
    kill_grace_s: float = 5.0
    flat_single_job: bool = False


@dataclass
class DevicePoolLauncherConf:
    """The jobs of a sweep at the same time, each on its own device group from a pool; the rest queued."""

    _target_: str = f"{_PACKAGE}.device_pool_launcher.DevicePoolLauncher"
    devices: list[int] = field(default_factory=lambda: [0, 1])  # on a CPU: process slots
    devices_per_job: int = 1
    # set to the job's devices (a job then sees its group as devices 0..k-1 and gets DEVICE_ID=0)
    visible_devices_env: list[str] = field(
        default_factory=lambda: ["CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES"]
    )
    # true: a job runs devices_per_job data-parallel ranks through msrun on its group
    data_parallel: bool = False
    bind_cores: bool = False  # slot s of k: cores [s*n/k, (s+1)*n/k - 1]
    fail_fast: bool = False  # true: the first failed job stops the sweep
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: Optional[float] = None  # per job
    kill_grace_s: float = 5.0
    flat_single_job: bool = False


_store = ConfigStore.instance()
_store.store(
    group="hydra/launcher", name="rank_table", node=RankTableLauncherConf, provider="birealnet_launchers"
)
_store.store(group="hydra/launcher", name="msrun", node=MsrunLauncherConf, provider="birealnet_launchers")
_store.store(
    group="hydra/launcher", name="device_pool", node=DevicePoolLauncherConf, provider="birealnet_launchers"
)
