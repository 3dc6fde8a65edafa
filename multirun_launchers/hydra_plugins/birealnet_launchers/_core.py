"""The work behind the birealnet launchers: job files, rank processes, their environment and logs, failures.

Each Hydra job is composed here, its output folder fixed, and the job (task function, config, Hydra context
and Singleton state, as Hydra's submitit launcher ships them) pickled into `<job>/.launcher/job.pkl`.
Every rank process runs `_rank_entry.py <job.pkl>`, which calls Hydra's `run_job` in that same folder and
writes `rank_<i>/result.pkl` and `rank_<i>/exit.json`; the job's JobReturn is rank 0's. A rank that fails
stops the whole job at once. Imported only when a launch starts (the plugin scan skips `_` modules).
"""

import copy
import json
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from . import rank_table as rt

log = logging.getLogger(__name__)

LAUNCH_DIR = ".launcher"
JOB_FILE = "job.pkl"
RESULT_FILE = "result.pkl"
EXIT_FILE = "exit.json"
PID_FILE = "pid"
RANK_LOG = "log.txt"
ENV_LOG = "env.log"
ENTRY_SCRIPT = Path(__file__).with_name("_rank_entry.py")
POLL_S = 0.1
TAIL_LINES = 30
# once every local rank has finished, how long msrun may take to wind down its scheduler (ranks that used
# collective communication get cluster_time_out: the scheduler may still serve other nodes)
MSRUN_WIND_DOWN_S = 20.0
SCHEDULER_PID_FILE = "scheduler.pid"
# variables of a distributed launch that must not leak from the launching shell into a job
_DIST_ENV = (
    "RANK_TABLE_FILE",
    "MINDSPORE_HCCL_CONFIG_PATH",
    "RANK_ID",
    "RANK_SIZE",
    "DEVICE_ID",
    "DEVICE_NUM",
    "MS_ROLE",
    "MS_WORKER_NUM",
    "MS_SCHED_HOST",
    "MS_SCHED_PORT",
    "MS_NODE_ID",
    "MS_TOPO_TIMEOUT",
)


class LauncherError(CompactHydraException, ValueError):
    """Bad launcher settings, found before any job starts; one line naming the problem and the fix."""


class RankFailedError(CompactHydraException, RuntimeError):
    """A job failed: the message names the rank, how it ended, and shows the tail of its log."""

    def __init__(self, message: str, summary: str = "", log_path: Path | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message.splitlines()[0]
        self.log_path = log_path

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.summary, self.log_path))


# ---------------------------------------------------------------------------------------------- jobs


@dataclass
class Job:
    """One Hydra job of a sweep, composed, with its output folder fixed."""

    idx: int
    overrides: list[str]
    config: DictConfig
    output_dir: Path
    node: int = 0  # this server's index in a job of several servers

    @property
    def name(self) -> str:
        shown = " ".join(filter_overrides(self.overrides))
        return f"#{self.idx}" + (f" ({shown})" if shown else "")

    @property
    def launch_dir(self) -> Path:
        """The launcher's files for this server: `.launcher/`, or `.launcher/node_<k>/` on the other
        servers of a job, so servers sharing one run folder never write the same file."""
        return self.output_dir / LAUNCH_DIR / (f"node_{self.node}" if self.node else "")

    def rank_dir(self, rank: int) -> Path:
        return self.output_dir / f"rank_{rank}"


def compose_jobs(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Job]:
    """Compose every job's config up front, so a bad override fails before any process starts.

    With the launcher's `flat_single_job`, a sweep of one job runs in the sweep folder itself (no `0/`):
    how `python run.py hardware=ascend8` gets one run folder although Hydra launches it as a sweep.
    """
    flat = bool(launcher.params.get("flat_single_job")) and len(job_overrides) == 1 and initial_job_idx == 0
    jobs = []
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
            if flat:
                config.hydra.sweep.subdir = "."
        jobs.append(Job(idx, list(overrides), config, _fix_output_dir(config)))
    return jobs


def _fix_output_dir(config: DictConfig) -> Path:
    """Resolve the job folder once, here, and store it as plain strings: rank processes started later
    must not evaluate `${now:...}` or `${hydra:...}` again and land in another folder."""
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(config)
    try:
        sweep_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
        subdir = str(OmegaConf.select(config, "hydra.sweep.subdir"))
    finally:
        hydra_config.cfg = previous
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.sweep.dir = sweep_dir
        config.hydra.sweep.subdir = subdir
    return Path(os.path.abspath(os.path.join(sweep_dir, subdir)))


def write_job_file(launcher: Any, job: Job) -> Path:
    """Pickle what a rank needs to run the job: a plain header (sys.path, folder), then the job itself."""
    job.launch_dir.mkdir(parents=True, exist_ok=True)
    path = job.launch_dir / JOB_FILE
    header = {
        "sys_path": [os.path.abspath(p) if p else os.getcwd() for p in sys.path],
        "output_dir": str(job.output_dir),
        "launch_dir": str(job.launch_dir),
        "job": job.name,
        # cloudpickle names the file of a function pickled by value "<dynamic-code>"; tracebacks want it
        "task_filename": getattr(getattr(launcher.task_function, "__code__", None), "co_filename", None),
    }
    payload = {
        "task_function": launcher.task_function,
        "config": job.config,
        "hydra_context": launcher.hydra_context,
        "singleton_state": Singleton.get_state(),
    }
    try:
        blob = cloudpickle.dumps(payload)
    except Exception as e:
        raise LauncherError(
            f"job {job.name}: the task function or its config cannot be pickled for the rank processes "
            f"({type(e).__name__}: {e}): keep module-level state picklable"
        ) from e
    with open(path, "wb") as f:
        pickle.dump(header, f)
        f.write(blob)
    return path


def _read_exit(job: Job, rank: int) -> dict[str, Any] | None:
    try:
        return json.loads((job.rank_dir(rank) / EXIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_result(job: Job, rank: int) -> JobReturn | None:
    try:
        with open(job.rank_dir(rank) / RESULT_FILE, "rb") as f:
            result = pickle.load(f)
    except Exception:
        return None
    return result if isinstance(result, JobReturn) else None


def _failed_return(job: Job, error: BaseException, base: JobReturn | None = None) -> JobReturn:
    """A FAILED JobReturn carrying `error`, filled in like Hydra's run_job fills one."""
    if base is not None:
        ret = copy.copy(base)
    else:
        ret = JobReturn()
        task_cfg = copy.deepcopy(job.config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        ret.cfg = task_cfg
        hydra_cfg = OmegaConf.create({"hydra": OmegaConf.to_container(job.config.hydra, resolve=False)})
        with open_dict(hydra_cfg):
            hydra_cfg.hydra.runtime.output_dir = str(job.output_dir)
        ret.hydra_cfg = hydra_cfg
        ret.overrides = list(job.config.hydra.overrides.task)
        ret.working_dir = str(job.output_dir) if job.config.hydra.job.chdir else os.getcwd()
        ret.task_name = str(job.config.hydra.job.name)
    ret.status = JobStatus.FAILED
    ret.return_value = error
    return ret


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of a log, without MindSpore's [INFO]/[DEBUG] chatter."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if not line.startswith(("[INFO]", "[DEBUG]"))]
    return "\n".join(kept[-lines:])


def _tail_text(log_path: Path) -> str:
    tail = log_tail(log_path)
    return f"\n--- last lines of {log_path} ---\n{tail}\n---" if tail else " (empty)"


def _describe_exit(code: int | None, info: Mapping[str, Any] | None) -> str:
    if code is None:
        how = "died without reporting (killed by a signal or os._exit)"
    elif code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    if info and info.get("error"):
        how += f" after {info['error']}"
    return how


# ------------------------------------------------------------------------------------------ processes


def _set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Linux: deliver `sig` to this process when its parent dies, so no rank outlives its launcher."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
        except Exception:
            pass


def _preexec(cores: Sequence[int] | None) -> Callable[[], None]:
    def setup_child() -> None:
        _set_parent_death_signal()
        if cores:
            os.sched_setaffinity(0, cores)

    return setup_child


def core_range(index: int, count: int) -> list[int]:
    """Cores of slot `index` out of `count`, as the seed's script binds them: [i*n/k, (i+1)*n/k - 1]."""
    cpus = (
        sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))
    )
    n = len(cpus)
    if count > n:
        return [cpus[index % n]]
    return cpus[index * n // count : (index + 1) * n // count]


def _cores_text(cores: Sequence[int]) -> str:
    return (
        f"{cores[0]}-{cores[-1]}"
        if list(cores) == list(range(cores[0], cores[-1] + 1))
        else ",".join(map(str, cores))
    )


def base_env(extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """This process's environment without another launch's rank variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV and not k.startswith("BIREALNET_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(popens: Sequence[subprocess.Popen], pids: Sequence[int] = (), grace_s: float = 5.0) -> None:
    """Stop processes, their process groups and every descendant: SIGTERM, then SIGKILL after `grace_s`."""
    roots = [p.pid for p in popens if p.poll() is None] + [pid for pid in pids if _alive(pid)]
    others: dict[int, psutil.Process] = {}
    for pid in roots:
        try:
            for child in psutil.Process(pid).children(recursive=True):
                others[child.pid] = child
        except psutil.Error:
            pass
    for pid in pids:
        if pid in roots:
            try:
                others.setdefault(pid, psutil.Process(pid))
            except psutil.Error:
                pass

    def signal_all(sig: int) -> None:
        for pid in roots:
            try:
                os.killpg(pid, sig)  # every rank leads its own session, so its pgid is its pid
            except OSError:
                pass
        for proc in list(others.values()):
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass

    if not roots and not others:
        return
    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if all(p.poll() is not None for p in popens) and not any(_alive(pid) for pid in others):
            return
        time.sleep(0.05)
    signal_all(signal.SIGKILL)
    for p in popens:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning(f"process {p.pid} did not exit after SIGKILL")


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt while jobs run, so every rank is stopped on the way out."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def free_port() -> int:
    """A TCP port that is free right now on this host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


@dataclass
class RankSpec:
    """One rank process to start directly: its global rank, extra environment and cores."""

    rank: int
    env: dict[str, str] = field(default_factory=dict)
    cores: list[int] | None = None


class JobRun:
    """A job's processes. `start()`, then `poll()` until it returns the JobReturn; `stop()` always."""

    def __init__(self, job: Job, job_file: Path, timeout_s: float | None, kill_grace_s: float) -> None:
        self.job = job
        self.job_file = job_file
        self.timeout_s = timeout_s
        self.kill_grace_s = kill_grace_s
        self.started = 0.0
        self.result: JobReturn | None = None

    def start(self) -> None:
        raise NotImplementedError

    def poll(self) -> JobReturn | None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _finish(self, ret: JobReturn) -> JobReturn:
        self.stop()
        self.result = ret
        return ret

    def _timed_out(self) -> bool:
        return self.timeout_s is not None and time.monotonic() - self.started > float(self.timeout_s)

    def _success(self, ranks: Sequence[int]) -> JobReturn:
        """Rank 0's JobReturn (or the lowest local rank's, on a node without rank 0)."""
        first = min(ranks)
        ret = _read_result(self.job, first)
        if ret is None:
            return self._rank_failure(
                first, "exited with code 0 but wrote no result (did the task exit early?)"
            )
        if first != 0:
            log.info(f"job {self.job.name}: rank 0 runs on another node; returning rank {first}'s result")
        return ret

    def _rank_failure(self, rank: int, how: str, stopped: Sequence[int] = ()) -> JobReturn:
        log_path = self.job.rank_dir(rank) / RANK_LOG
        summary = f"rank {rank} {how}"
        message = f"job {self.job.name} failed: {summary}"
        if stopped:
            message += f"; stopped rank(s) {', '.join(map(str, stopped))}"
        message += f". Log: {log_path}" + _tail_text(log_path)
        log.error(message)
        return _failed_return(
            self.job, RankFailedError(message, summary, log_path), _read_result(self.job, rank)
        )

    def _job_failure(self, summary: str, log_path: Path | None) -> JobReturn:
        message = f"job {self.job.name} failed: {summary}"
        if log_path is not None:
            message += f". Log: {log_path}" + _tail_text(log_path)
        log.error(message)
        return _failed_return(self.job, RankFailedError(message, summary, log_path))


class RankGroupRun(JobRun):
    """Rank processes started directly, one per RankSpec (rank table, device pool)."""

    def __init__(
        self,
        job: Job,
        job_file: Path,
        ranks: Sequence[RankSpec],
        base: Mapping[str, str],
        timeout_s: float | None = None,
        kill_grace_s: float = 5.0,
    ) -> None:
        super().__init__(job, job_file, timeout_s, kill_grace_s)
        self.ranks = list(ranks)
        self.base = dict(base)
        self.procs: dict[int, subprocess.Popen] = {}

    def start(self) -> None:
        self.started = time.monotonic()
        for spec in self.ranks:
            folder = self.job.rank_dir(spec.rank)
            folder.mkdir(parents=True, exist_ok=True)
            env = {**self.base, **spec.env, "BIREALNET_RANK": str(spec.rank)}
            if spec.cores:
                env["BIREALNET_CPU_CORES"] = _cores_text(spec.cores)
            with open(folder / RANK_LOG, "ab") as out:
                self.procs[spec.rank] = subprocess.Popen(
                    [sys.executable, str(ENTRY_SCRIPT), str(self.job_file)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_preexec(spec.cores),
                )

    def poll(self) -> JobReturn | None:
        if self.result is not None:
            return self.result
        codes = {rank: proc.poll() for rank, proc in self.procs.items()}
        failed = [rank for rank, code in codes.items() if code not in (None, 0)]
        if failed:
            # several at once: prefer a rank that reported its own error over one that died from it
            failed.sort(key=lambda r: (not (_read_exit(self.job, r) or {}).get("error"), r))
            rank = failed[0]
            stopped = [r for r, code in codes.items() if code is None]
            self.stop()
            return self._finish(
                self._rank_failure(rank, _describe_exit(codes[rank], _read_exit(self.job, rank)), stopped)
            )
        if all(code == 0 for code in codes.values()):
            return self._finish(self._success(list(codes)))
        if self._timed_out():
            running = [r for r, code in codes.items() if code is None]
            self.stop()
            return self._finish(
                self._job_failure(
                    f"rank(s) {', '.join(map(str, running))} still running after timeout_s={self.timeout_s}",
                    self.job.rank_dir(running[0]) / RANK_LOG,
                )
            )
        return None

    def stop(self) -> None:
        kill_tree(list(self.procs.values()), grace_s=self.kill_grace_s)


class MsrunRun(JobRun):
    """One `msrun` that starts the job's local ranks (and, on the master node, the scheduler)."""

    def __init__(
        self,
        job: Job,
        job_file: Path,
        msrun_cmd: list[str],
        options: Mapping[str, Any],
        local_ranks: Sequence[int],
        base: Mapping[str, str],
        cores: list[int] | None = None,
        timeout_s: float | None = None,
        kill_grace_s: float = 5.0,
    ) -> None:
        super().__init__(job, job_file, timeout_s, kill_grace_s)
        self.msrun_cmd = list(msrun_cmd)
        self.options = dict(options)
        self.local_ranks = list(local_ranks)
        self.base = dict(base)
        self.cores = cores
        self.proc: subprocess.Popen | None = None
        self.log_dir = Path(self.options.pop("log_dir", None) or job.output_dir / "msrun").absolute()
        self.extra_args = [str(a) for a in self.options.pop("extra_args", None) or []]
        self.all_done_at: float | None = None

    @property
    def msrun_log(self) -> Path:
        return self.log_dir / "msrun.log"

    def command(self) -> list[str]:
        """The msrun command line of this job."""
        opts = [f"--{key}={value}" for key, value in self.options.items()]
        return [
            *self.msrun_cmd,
            *opts,
            f"--log_dir={self.log_dir}",
            "--join=True",
            *self.extra_args,
            str(ENTRY_SCRIPT),
            str(self.job_file),
        ]

    def start(self) -> None:
        self.started = time.monotonic()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for rank in self.local_ranks:
            self.job.rank_dir(rank).mkdir(parents=True, exist_ok=True)
        # msrun starts every process as `python ...` from PATH: put this interpreter first
        shim_dir = self.job.launch_dir / "bin"
        shim_dir.mkdir(parents=True, exist_ok=True)
        shim = shim_dir / "python"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
        shim.chmod(0o755)
        env = {
            **self.base,
            "PATH": f"{shim_dir}{os.pathsep}{self.base.get('PATH', '')}",
            "BIREALNET_REDIRECT_LOG": "1",
            "BIREALNET_LOCAL_RANKS": ",".join(map(str, self.local_ranks)),
        }
        if self.cores:
            env["BIREALNET_CPU_CORES"] = _cores_text(self.cores)
        cmd = self.command()
        with open(self.msrun_log, "ab") as out:
            out.write(("$ " + " ".join(cmd) + "\n").encode())
            out.flush()
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_preexec(self.cores),
            )

    def _rank_pid(self, rank: int) -> int | None:
        try:
            return int((self.job.rank_dir(rank) / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return None

    def _rank_state(self, rank: int) -> str:
        """pending | running | completed | failed | died"""
        info = _read_exit(self.job, rank)
        if info is not None:
            return "completed" if info.get("status") == "completed" else "failed"
        pid = self._rank_pid(rank)
        if pid is None:
            return "pending"
        if _alive(pid):
            return "running"
        return "died" if _read_exit(self.job, rank) is None else self._rank_state(rank)

    def poll(self) -> JobReturn | None:
        if self.result is not None:
            return self.result
        assert self.proc is not None
        code = self.proc.poll()
        states = {rank: self._rank_state(rank) for rank in self.local_ranks}
        bad = [r for r, s in states.items() if s in ("failed", "died")]
        if bad:
            bad.sort(key=lambda r: (states[r] != "failed", r))
            rank = bad[0]
            info = _read_exit(self.job, rank)
            how = _describe_exit(info.get("code", 1) if info else None, info)
            stopped = [r for r, s in states.items() if s in ("running", "pending")]
            self.stop()
            return self._finish(self._rank_failure(rank, how, stopped))
        done = all(s == "completed" for s in states.values())
        if code is not None:
            if done:
                if code != 0:
                    log.warning(
                        f"job {self.job.name}: every rank completed but msrun exited with code {code}; "
                        f"see {self.log_dir}"
                    )
                return self._finish(self._success(self.local_ranks))
            self.stop()
            waiting = [r for r, s in states.items() if s != "completed"]
            return self._finish(
                self._job_failure(
                    f"msrun exited with code {code} before rank(s) {', '.join(map(str, waiting))} finished "
                    f"(its logs: {self.log_dir})",
                    self.msrun_log,
                )
            )
        if done:
            # the scheduler winds down by itself; don't wait for it forever
            self.all_done_at = self.all_done_at or time.monotonic()
            used_comm = any((_read_exit(self.job, r) or {}).get("comm_initialized") for r in self.local_ranks)
            wind_down = (
                max(MSRUN_WIND_DOWN_S, float(self.options["cluster_time_out"]))
                if used_comm
                else MSRUN_WIND_DOWN_S
            )
            if time.monotonic() - self.all_done_at > wind_down:
                log.warning(
                    f"job {self.job.name}: every rank completed; stopping msrun, which had not exited "
                    f"{wind_down:.0f}s later"
                )
                return self._finish(self._success(self.local_ranks))
        if self._timed_out():
            running = [r for r, s in states.items() if s != "completed"]
            self.stop()
            return self._finish(
                self._job_failure(
                    f"rank(s) {', '.join(map(str, running))} still running after timeout_s={self.timeout_s}",
                    self.job.rank_dir(running[0]) / RANK_LOG if running else self.msrun_log,
                )
            )
        return None

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = [pid for pid in (self._rank_pid(r) for r in self.local_ranks) if pid is not None]
        try:  # the scheduler stays in msrun's process group but outlives msrun when msrun dies first
            pids.append(int((self.job.launch_dir / SCHEDULER_PID_FILE).read_text()))
        except (OSError, ValueError):
            pass
        kill_tree([self.proc], pids, grace_s=self.kill_grace_s)


def run_to_end(run: JobRun) -> JobReturn:
    """Start a job's processes and wait for its JobReturn; its processes are gone when this returns."""
    try:
        run.start()
        while True:
            ret = run.poll()
            if ret is not None:
                return ret
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        log.error(f"interrupted: stopping every rank of job {run.job.name}")
        raise
    finally:
        run.stop()


# ------------------------------------------------------------------------------------------ launchers


def _params(launcher: Any) -> DictConfig:
    return OmegaConf.create(dict(launcher.params))


def _begin(launcher: Any) -> None:
    setup_globals()
    assert (
        launcher.config is not None
        and launcher.hydra_context is not None
        and launcher.task_function is not None
    )
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)


def _plain_env(params: DictConfig) -> dict[str, str]:
    env = params.get("env")
    if not env:
        return {}
    return {str(k): str(v) for k, v in OmegaConf.to_container(env, resolve=True).items()}  # type: ignore[union-attr]


def rank_table_source(params: DictConfig) -> tuple[dict[str, Any], Path | None]:
    """The rank table (validated) and its file, or a table generated from `devices` (file None)."""
    num = params.get("num_devices")
    if params.get("rank_table"):
        path = Path(str(params.rank_table)).absolute()
        return rt.load_rank_table(path, num_devices=num), path
    if params.get("devices"):
        ips = params.get("device_ips")
        table = rt.build_rank_table(
            list(params.devices), list(ips) if ips else None, params.get("server_id"), params.get("hccn_conf")
        )
        rt.validate_rank_table(table, source="generated rank table", num_devices=num)
        return table, None
    raise LauncherError(
        "no rank table: set hydra.launcher.rank_table=/path/rank_table.json (or export RANK_TABLE_FILE), or "
        "hydra.launcher.devices=[0,1,...] to generate one from /etc/hccn.conf"
    )


def launch_rank_table(
    launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """Each job: one process per device of this server in the rank table, with the HCCL environment."""
    _begin(launcher)
    params = _params(launcher)
    try:
        table, table_path = rank_table_source(params)
        local = rt.local_ranks(table, params.get("server_index"))
    except rt.RankTableError as e:
        raise LauncherError(str(e)) from None
    rank_size = sum(len(s["device"]) for s in table["server_list"])
    server = local[0]
    jobs = compose_jobs(launcher, job_overrides, initial_job_idx)
    for job in jobs:
        job.node = server.server_index
    log.info(
        f"rank_table: {len(jobs)} job(s), each {len(local)} rank(s) of {rank_size} on server "
        f"{server.server_index} ({server.server_id}), devices {[e.device_id for e in local]}, table "
        f"{table_path or 'generated'}; sweep dir {launcher.config.hydra.sweep.dir}"
    )
    results = []
    with stop_on_signals():
        for job in jobs:
            log.info(f"\t{job.name} -> {job.output_dir}")
            job_file = write_job_file(launcher, job)
            table_copy = rt.write_rank_table(table, job.launch_dir / "rank_table.json")
            ranks = []
            for i, entry in enumerate(local):
                env = {
                    "RANK_TABLE_FILE": str(table_copy),
                    "RANK_SIZE": str(rank_size),
                    "RANK_ID": str(entry.rank_id),
                    "DEVICE_ID": str(entry.device_id),
                    "DEVICE_NUM": str(len(local)),
                    "BIREALNET_LOCAL_RANK": str(i),
                    "BIREALNET_SERVER_INDEX": str(entry.server_index),
                }
                cores = core_range(i, len(local)) if params.bind_cores else None
                ranks.append(RankSpec(entry.rank_id, env, cores))
            run = RankGroupRun(
                job,
                job_file,
                ranks,
                base_env(_plain_env(params)),
                params.get("timeout_s"),
                float(params.kill_grace_s),
            )
            results.append(run_to_end(run))
    return results


def msrun_command(params: Mapping[str, Any]) -> list[str]:
    """How to call msrun: the configured one, the one next to this Python, on PATH, or its module."""
    import importlib.util

    configured = params.get("msrun")
    if configured:
        found = shutil.which(str(configured))
        if not found:
            raise LauncherError(
                f"msrun {configured!r} not found: set hydra.launcher.msrun to the msrun executable"
            )
        return [found]
    beside = Path(sys.executable).with_name("msrun")
    if beside.is_file():
        return [str(beside)]
    on_path = shutil.which("msrun")
    if on_path:
        return [on_path]
    if importlib.util.find_spec("mindspore") is not None:
        return [sys.executable, "-m", "mindspore.parallel.cluster.run"]
    raise LauncherError(
        "msrun not found: install mindspore (it provides msrun) or set hydra.launcher.msrun=PATH"
    )


def _msrun_options(params: DictConfig, master_port: int) -> dict[str, Any]:
    return {
        "worker_num": int(params.worker_num),
        "local_worker_num": int(params.local_worker_num),
        "master_addr": str(params.master_addr),
        "master_port": master_port,
        "node_rank": int(params.node_rank),
        "cluster_time_out": int(params.cluster_time_out),
        "bind_core": bool(params.bind_core),
        "log_dir": params.get("log_dir"),
        "extra_args": list(params.get("extra_args") or []),
    }


def launch_msrun(
    launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """Each job: one msrun with this node's ranks (dynamic cluster)."""
    _begin(launcher)
    params = _params(launcher)
    workers, local, node = int(params.worker_num), int(params.local_worker_num), int(params.node_rank)
    if workers < 1 or not 1 <= local <= workers:
        raise LauncherError(
            f"msrun: local_worker_num={local} and worker_num={workers}: need 1 <= local <= worker_num"
        )
    if workers % local:
        raise LauncherError(
            f"msrun: worker_num={workers} is not a multiple of local_worker_num={local}: give every "
            f"node the same number of workers"
        )
    if not 0 <= node < workers // local:
        raise LauncherError(
            f"msrun: node_rank={node} but {workers // local} node(s): use 0..{workers // local - 1}"
        )
    if params.get("master_port") is None and workers != local:
        raise LauncherError(
            "msrun on several nodes needs hydra.launcher.master_port=PORT (the same on every node)"
        )
    cmd = msrun_command(params)
    jobs = compose_jobs(launcher, job_overrides, initial_job_idx)
    for job in jobs:
        job.node = node
    ranks = list(range(node * local, (node + 1) * local))
    log.info(
        f"msrun: {len(jobs)} job(s), each {workers} worker(s), ranks {ranks} on this node "
        f"(node_rank {node}); sweep dir {launcher.config.hydra.sweep.dir}"
    )
    results = []
    with stop_on_signals():
        for job in jobs:
            port = int(params.master_port) if params.get("master_port") is not None else free_port()
            log.info(f"\t{job.name} -> {job.output_dir} (master {params.master_addr}:{port})")
            job_file = write_job_file(launcher, job)
            run = MsrunRun(
                job,
                job_file,
                cmd,
                _msrun_options(params, port),
                ranks,
                base_env(_plain_env(params)),
                timeout_s=params.get("timeout_s"),
                kill_grace_s=float(params.kill_grace_s),
            )
            results.append(run_to_end(run))
    return results


def device_groups(devices: Sequence[int], per_job: int) -> list[list[int]]:
    """Split the pool into groups of `per_job` devices, one group per concurrent job."""
    devices = [int(d) for d in devices]
    if not devices:
        raise LauncherError(
            "device_pool: hydra.launcher.devices is empty: list the devices (or CPU slots) to use"
        )
    if len(set(devices)) != len(devices):
        raise LauncherError(f"device_pool: devices {devices} repeat an id: list each device once")
    if per_job < 1 or len(devices) % per_job:
        raise LauncherError(
            f"device_pool: {len(devices)} devices do not split into groups of devices_per_job="
            f"{per_job}: make len(devices) a multiple of it"
        )
    return [devices[i : i + per_job] for i in range(0, len(devices), per_job)]


def launch_device_pool(
    launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """The sweep's jobs at the same time, one per device group; queued jobs start as groups free up."""
    _begin(launcher)
    params = _params(launcher)
    groups = device_groups(list(params.devices), int(params.devices_per_job))
    data_parallel = bool(params.data_parallel) and int(params.devices_per_job) > 1
    msrun_cmd = msrun_command({}) if data_parallel else []
    jobs = compose_jobs(launcher, job_overrides, initial_job_idx)
    log.info(
        f"device_pool: {len(jobs)} job(s) on {len(groups)} slot(s) {groups}"
        f"{' (data parallel through msrun)' if data_parallel else ''}; "
        f"sweep dir {launcher.config.hydra.sweep.dir}"
    )
    queue = deque(jobs)
    free = deque(range(len(groups)))
    running: dict[int, tuple[JobRun, int]] = {}
    results: dict[int, JobReturn] = {}

    def make_run(job: Job, slot: int) -> JobRun:
        group = groups[slot]
        devices = ",".join(map(str, group))
        visible = list(params.visible_devices_env or [])
        env = {var: devices for var in visible}
        env.update({"BIREALNET_SLOT": str(slot), "BIREALNET_DEVICES": devices})
        cores = core_range(slot, len(groups)) if params.bind_cores else None
        base = base_env({**_plain_env(params), **env})
        job_file = write_job_file(launcher, job)
        if data_parallel:
            options = {
                "worker_num": len(group),
                "local_worker_num": len(group),
                "master_addr": "127.0.0.1",
                "master_port": free_port(),
                "node_rank": 0,
                "cluster_time_out": 600,
                "bind_core": False,
                "log_dir": None,
                "extra_args": [],
            }
            return MsrunRun(
                job,
                job_file,
                msrun_cmd,
                options,
                list(range(len(group))),
                base,
                cores,
                params.get("timeout_s"),
                float(params.kill_grace_s),
            )
        spec = RankSpec(0, {"DEVICE_ID": "0" if visible else str(group[0])}, cores)
        return RankGroupRun(job, job_file, [spec], base, params.get("timeout_s"), float(params.kill_grace_s))

    def not_run(job: Job, why: str) -> None:
        results[job.idx] = _failed_return(job, RankFailedError(f"job {job.name} {why}", why))

    with stop_on_signals():
        try:
            while queue or running:
                while queue and free:
                    job, slot = queue.popleft(), free.popleft()
                    log.info(f"\t{job.name} on devices {groups[slot]} -> {job.output_dir}")
                    run = make_run(job, slot)
                    run.start()
                    running[job.idx] = (run, slot)
                for idx, (run, slot) in list(running.items()):
                    ret = run.poll()
                    if ret is None:
                        continue
                    del running[idx]
                    free.append(slot)
                    results[idx] = ret
                    if ret.status == JobStatus.COMPLETED:
                        log.info(f"\t{run.job.name} completed")
                    elif params.fail_fast:
                        for job in queue:
                            not_run(job, "was not started: an earlier job failed and fail_fast is set")
                        queue.clear()
                        for other, _ in running.values():
                            other.stop()
                            not_run(other.job, "was stopped: an earlier job failed and fail_fast is set")
                        running.clear()
                        break
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            log.error(f"interrupted: stopping {len(running)} running job(s)")
            raise
        finally:
            for run, _ in running.values():
                run.stop()
    ordered = [results[job.idx] for job in jobs]
    failed = [(job, ret) for job, ret in zip(jobs, ordered, strict=True) if ret.status != JobStatus.COMPLETED]
    if failed:
        lines = []
        for job, ret in failed:
            error = ret._return_value
            summary = getattr(error, "summary", None) or f"{type(error).__name__}: {error}".splitlines()[0]
            where = getattr(error, "log_path", None)
            lines.append(f"  {job.name}: {summary}" + (f" (log: {where})" if where else ""))
        log.error(f"device_pool: {len(failed)} of {len(jobs)} job(s) failed:\n" + "\n".join(lines))
    else:
        log.info(f"device_pool: all {len(jobs)} job(s) completed")
    return ordered
