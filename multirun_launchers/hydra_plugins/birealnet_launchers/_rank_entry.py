"""One rank of a Hydra job started by a birealnet launcher: `python _rank_entry.py <job>/.launcher/job.pkl`.

Runs Hydra's `run_job` on the pickled job in the job's own folder and leaves `rank_<i>/result.pkl` (the
JobReturn), `rank_<i>/exit.json`, `env.log` and `pid` there. Ranks other than 0 write no `.hydra/` files
and log into `rank_<i>/`. Started by msrun as the scheduler (MS_ROLE=MS_SCHED), it runs MindSpore's
scheduler instead, and exits early when every rank finished without using collective communication.
Standard library only until the job's `sys.path` is in place.
"""

import json
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import types
from typing import Any


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except Exception:
            pass


def _rank() -> int:
    for name in ("BIREALNET_RANK", "RANK_ID", "MS_NODE_ID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def _redirect_output(path: str) -> None:
    """Send this process's stdout and stderr (Python's and the C++ libraries') to `path`."""
    print(f"birealnet: the output of this rank continues in {path}", flush=True)
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _read_exit(job_dir: str, rank: int) -> dict[str, Any] | None:
    try:
        with open(os.path.join(job_dir, f"rank_{rank}", "exit.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _comm_initialized() -> bool:
    helper = sys.modules.get("mindspore.communication._comm_helper")
    return bool(getattr(getattr(helper, "GlobalComm", None), "INITED", False))


def run_scheduler(header: dict[str, Any]) -> int:
    """MindSpore's dynamic-cluster scheduler; leaves as soon as the ranks finished without needing it."""
    job_dir = header["output_dir"]
    ranks: list[int] = [int(r) for r in os.environ.get("BIREALNET_LOCAL_RANKS", "").split(",") if r]

    def watch() -> None:
        while True:
            infos = [_read_exit(job_dir, r) for r in ranks]
            if ranks and all(infos) and not any(i.get("comm_initialized") for i in infos if i):
                print(
                    "birealnet: every rank finished without collective communication; scheduler exits",
                    flush=True,
                )
                os._exit(0)
            time.sleep(0.2)

    launch_dir = header.get("launch_dir") or os.path.join(job_dir, ".launcher")
    with open(os.path.join(launch_dir, "scheduler.pid"), "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    threading.Thread(target=watch, daemon=True).start()
    sys.path[:] = header["sys_path"]
    from mindspore.communication import init

    init()
    return 0


def _rank_logging(config: Any, rank: int) -> None:
    """Rank `rank` (not 0) writes no .hydra/ files and puts its job log file(s) into rank_<rank>/."""
    from omegaconf import OmegaConf, open_dict, read_write

    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.output_subdir = None
        handlers = OmegaConf.select(config, "hydra.job_logging.handlers")
        if handlers:
            for name in list(handlers.keys()):
                raw = OmegaConf.to_container(handlers[name], resolve=False)
                if isinstance(raw, dict) and isinstance(raw.get("filename"), str):
                    filename = raw["filename"]
                    handlers[name].filename = os.path.join(
                        os.path.dirname(filename), f"rank_{rank}", os.path.basename(filename)
                    )


def _with_filename(code: Any, filename: str) -> Any:
    """`code` and the code nested in it (inner functions, classes and their methods) named after `filename`:
    tracebacks, and MindSpore's graph mode, which reads the source of a Cell's `construct`, need it."""
    consts = tuple(
        _with_filename(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def run_rank(job_file: str, offset: int, header: dict[str, Any], rank: int, rank_dir: str) -> int:
    """Run the job as rank `rank`; write its result and exit status; return the exit code."""
    import cloudpickle
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals

    info: dict[str, Any] = {"rank": rank, "status": "failed", "error": None, "comm_initialized": False}
    code = 1
    ret: JobReturn | None = None
    try:
        with open(job_file, "rb") as f:
            f.seek(offset)
            payload = pickle.load(f)
        task_function = payload["task_function"]
        code_object = getattr(task_function, "__code__", None)
        if (
            header.get("task_filename")
            and code_object is not None
            and code_object.co_filename == "<dynamic-code>"
        ):
            task_function.__code__ = _with_filename(code_object, header["task_filename"])
        Singleton.set_state(payload["singleton_state"])
        setup_globals()
        config = payload["config"]
        if rank != 0:
            _rank_logging(config, rank)
        ret = run_job(
            hydra_context=payload["hydra_context"],
            task_function=task_function,
            config=config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        if ret.status == JobStatus.COMPLETED:
            info["status"], code = "completed", 0
        else:
            error = ret._return_value
            info["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
            print(f"birealnet: rank {rank}: the task raised", file=sys.stderr)
            traceback.print_exception(type(error), error, error.__traceback__)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) and e.code != 0 else 1
        info["error"] = f"SystemExit({e.code!r}) from the task"
    except BaseException as e:  # noqa: B036 - a rank reports whatever ended it
        info["error"] = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        traceback.print_exc()
        code = 130 if isinstance(e, KeyboardInterrupt) else 1
    info["comm_initialized"] = _comm_initialized()
    if ret is not None:
        try:
            blob = cloudpickle.dumps(ret)
        except Exception as e:
            message = f"rank {rank}: the job's return value cannot be pickled ({type(e).__name__}: {e})"
            print(f"birealnet: {message}", file=sys.stderr)
            ret.status, ret.return_value = JobStatus.FAILED, RuntimeError(message)
            info.update(status="failed", error=message)
            code = 1
            blob = cloudpickle.dumps(ret)
        tmp = os.path.join(rank_dir, "result.pkl.tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, os.path.join(rank_dir, "result.pkl"))
    info["code"] = code
    sys.stdout.flush()
    sys.stderr.flush()
    _write_json(os.path.join(rank_dir, "exit.json"), info)
    return code


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} <job.pkl>", file=sys.stderr)
        return 2
    _die_with_parent()
    job_file = os.path.abspath(argv[1])
    with open(job_file, "rb") as f:
        header = pickle.load(f)
        offset = f.tell()
    if os.environ.get("MS_ROLE") == "MS_SCHED":
        return run_scheduler(header)
    rank = _rank()
    os.environ["BIREALNET_RANK"] = str(rank)
    rank_dir = os.path.join(header["output_dir"], f"rank_{rank}")
    os.makedirs(rank_dir, exist_ok=True)
    if os.environ.get("BIREALNET_REDIRECT_LOG") == "1":
        _redirect_output(os.path.join(rank_dir, "log.txt"))
    with open(os.path.join(rank_dir, "pid"), "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
    with open(os.path.join(rank_dir, "env.log"), "w", encoding="utf-8") as f:
        f.writelines(f"{k}={v}\n" for k, v in sorted(os.environ.items()))
    sys.path[:] = header["sys_path"]
    return run_rank(job_file, offset, header, rank, rank_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
