"""The rank processes themselves: folders, environment, return value, failures, Ctrl-C, the device pool."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from launcher_testing import DEVICE_IPS, alive, processes_mentioning, rank_pids, run_app, write_app
from omegaconf import DictConfig


def env_of(rank_dir: Path) -> dict:
    return dict(line.split("=", 1) for line in (rank_dir / "env.log").read_text().splitlines() if "=" in line)


def job_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("multirun/*/*/*/.launcher"))


@pytest.mark.usefixtures("hydra_restore_singletons", "with_rank_table", "no_stray_processes")
def test_the_job_returns_rank_0s_value(hydra_sweep_runner: Any, tmp_path: Path) -> None:
    def task(cfg: DictConfig) -> Any:
        return {"rank": int(os.environ["RANK_ID"]), "foo": cfg.foo}

    sweep = hydra_sweep_runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        task_function=task,
        config_path="configs",
        config_name="compose.yaml",
        overrides=["hydra/launcher=rank_table", "foo=1,2"],
        temp_dir=tmp_path,
    )
    with sweep:
        assert [r.return_value for r in sweep.returns[0]] == [{"rank": 0, "foo": 1}, {"rank": 0, "foo": 2}]
        for job in ("0", "1"):
            rank_1 = tmp_path / job / "rank_1"
            assert json.loads((rank_1 / "exit.json").read_text())["status"] == "completed"


def test_rank_table_ranks_folders_env_and_one_run_folder(tmp_path: Path, with_rank_table: Path) -> None:
    app = write_app(
        tmp_path,
        """
        import logging
        logging.getLogger("task").info("rank %s logs this", os.environ["RANK_ID"])
        print("stdout of rank", os.environ["RANK_ID"])
        return 0
    """,
    )
    done = run_app(app, ["-m", "hydra/launcher=rank_table"])  # default sweep dir: multirun/${now:...}
    assert done.returncode == 0, done.stdout
    jobs = job_dirs(tmp_path)
    assert len(jobs) == 1, f"one job folder, even though every rank evaluates the config: {jobs}"
    job = jobs[0]
    for rank in (0, 1):
        env = env_of(job / f"rank_{rank}")
        copy = job / ".launcher" / "rank_table.json"
        assert env["RANK_TABLE_FILE"] == str(copy) and copy.read_text() == with_rank_table.read_text()
        assert (env["RANK_SIZE"], env["RANK_ID"], env["DEVICE_ID"], env["DEVICE_NUM"]) == (
            "2",
            str(rank),
            str(rank),
            "2",
        )
        assert f"stdout of rank {rank}" in (job / f"rank_{rank}" / "log.txt").read_text()
    assert "rank 0 logs this" in (job / "app.log").read_text()  # Hydra's job log: rank 0's
    assert "rank 1" not in (job / "app.log").read_text()
    assert "rank 1 logs this" in (job / "rank_1" / "app.log").read_text()
    assert (job / ".hydra" / "config.yaml").is_file() and not (job / "rank_1" / ".hydra").exists()


def test_flat_single_job_is_one_run_folder(tmp_path: Path, with_rank_table: Path) -> None:
    """What the hardware options use: `python run.py hardware=ascend8` launches a one-job sweep."""
    app = write_app(tmp_path, "return 0")
    flat = ["-m", "hydra/launcher=rank_table", "hydra.launcher.flat_single_job=true", "hydra.sweep.dir=out"]
    done = run_app(app, flat)
    assert done.returncode == 0, done.stdout
    assert (tmp_path / "out/.hydra/config.yaml").is_file() and (tmp_path / "out/multirun.yaml").is_file()
    assert sorted(p.name for p in (tmp_path / "out").glob("rank_*")) == ["rank_0", "rank_1"]
    assert not (tmp_path / "out/0").exists()
    sweep = run_app(app, [*flat[:-1], "hydra.sweep.dir=sweep", "+x=1,2"])
    assert (
        sweep.returncode == 0 and (tmp_path / "sweep/0/rank_1").is_dir() and (tmp_path / "sweep/1").is_dir()
    )


def test_generated_rank_table_and_core_binding(tmp_path: Path) -> None:
    app = write_app(tmp_path, "print('cores', sorted(os.sched_getaffinity(0)))")
    ips = ",".join(DEVICE_IPS)
    done = run_app(
        app,
        [
            "-m",
            "hydra/launcher=rank_table",
            "hydra.launcher.devices=[0,1]",
            f"hydra.launcher.device_ips=[{ips}]",
            "hydra.launcher.bind_cores=true",
            "hydra.sweep.dir=out",
        ],
    )
    assert done.returncode == 0, done.stdout
    table = json.loads((tmp_path / "out/0/.launcher/rank_table.json").read_text())
    assert [d["device_ip"] for d in table["server_list"][0]["device"]] == DEVICE_IPS
    cpus = sorted(os.sched_getaffinity(0))
    for rank in (0, 1):
        want = cpus[rank * len(cpus) // 2 : (rank + 1) * len(cpus) // 2] if len(cpus) >= 2 else cpus
        assert f"cores {want}" in (tmp_path / f"out/0/rank_{rank}/log.txt").read_text()
        assert env_of(tmp_path / f"out/0/rank_{rank}")["BIREALNET_CPU_CORES"]


def test_bad_rank_table_is_one_line_before_any_work(tmp_path: Path) -> None:
    app = write_app(tmp_path, "return 0")
    (tmp_path / "rt.json").write_text('{"version": "1.0", "server_count": 1}')
    done = run_app(
        app, ["-m", "hydra/launcher=rank_table", "hydra.launcher.rank_table=rt.json", "hydra.sweep.dir=out"]
    )
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        f"rank table {tmp_path / 'rt.json'}: no 'server_list' key: "
        "add it (keys: version, server_count, server_list, status)"
    )
    assert not (tmp_path / "out" / "0").exists()
    missing = run_app(app, ["-m", "hydra/launcher=rank_table"])
    assert "no rank table: set hydra.launcher.rank_table=" in missing.stdout.splitlines()[0]


SLEEPER = """
    rank = int(os.environ["BIREALNET_RANK"])
    print("rank", rank, "is running", flush=True)
    if rank == 1:
        time.sleep(1.5)
        {kill}
    time.sleep(120)
"""


@pytest.mark.parametrize(
    "launcher, kill, expected",
    [
        ("rank_table", "os.kill(os.getpid(), signal.SIGKILL)", "rank 1 was killed by SIGKILL"),
        (
            "rank_table",
            "raise ValueError('boom on rank 1')",
            "rank 1 exited with code 1 after ValueError: boom on rank 1",
        ),
        (
            "msrun",
            "os.kill(os.getpid(), signal.SIGKILL)",
            "rank 1 died without reporting (killed by a signal or os._exit)",
        ),
    ],
)
def test_a_failing_rank_ends_the_job_fast(
    tmp_path: Path, with_rank_table: Path, launcher: str, kill: str, expected: str
) -> None:
    app = write_app(tmp_path, SLEEPER.format(kill=kill))
    start = time.monotonic()
    done = run_app(app, ["-m", f"hydra/launcher={launcher}", "hydra.sweep.dir=out"], timeout=90)
    elapsed = time.monotonic() - start
    assert done.returncode == 1
    assert f"job #0 failed: {expected}; stopped rank(s) 0" in done.stdout
    assert f"--- last lines of {tmp_path / 'out/0/rank_1/log.txt'} ---\nrank 1 is running\n" in done.stdout
    if "ValueError" in kill:
        assert "Traceback" in done.stdout and "boom on rank 1" in done.stdout
    assert elapsed < (30 if launcher == "msrun" else 20), f"took {elapsed:.1f}s"
    assert not alive(rank_pids(tmp_path / "out/0"))
    assert not processes_mentioning(str(tmp_path / "out")), "a process of the job outlived it"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_every_rank(tmp_path: Path, with_rank_table: Path, sig: int) -> None:
    app = write_app(tmp_path, "time.sleep(120)")
    proc = subprocess.Popen(
        [sys.executable, str(app), "-m", "hydra/launcher=rank_table", "hydra.sweep.dir=out"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(rank_pids(tmp_path / "out/0")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = rank_pids(tmp_path / "out/0")
        assert len(alive(pids)) == 2
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "interrupted: stopping every rank of job #0" in out
    assert not alive(pids)


def test_timeout_stops_the_job(tmp_path: Path, with_rank_table: Path) -> None:
    app = write_app(tmp_path, "time.sleep(120)")
    done = run_app(
        app, ["-m", "hydra/launcher=rank_table", "hydra.launcher.timeout_s=1", "hydra.sweep.dir=out"]
    )
    assert done.returncode == 1
    assert "job #0 failed: rank(s) 0, 1 still running after timeout_s=1" in done.stdout
    assert not alive(rank_pids(tmp_path / "out/0"))


POOL_TASK = """
    import json
    from hydra.core.hydra_config import HydraConfig
    start = time.time()
    time.sleep(0.3 if cfg.x == {bad} else 1.5)  # the bad job fails while its neighbours still run
    info = {{key: os.environ.get(key) for key in ("BIREALNET_SLOT", "BIREALNET_DEVICES", "DEVICE_ID",
                                                  "CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES")}}
    info.update(x=cfg.x, start=start, end=time.time())
    with open(os.path.join(HydraConfig.get().runtime.output_dir, "info.json"), "w") as f:
        json.dump(info, f)
    if cfg.x == {bad}:
        raise RuntimeError("job with x={bad} fails")
    return cfg.x
"""


def test_device_pool_runs_jobs_side_by_side_and_survives_a_failure(tmp_path: Path) -> None:
    app = write_app(tmp_path, POOL_TASK.format(bad=1))
    done = run_app(
        app,
        [
            "-m",
            "hydra/launcher=device_pool",
            "hydra.launcher.devices=[0,1]",
            "+x=0,1,2,3",
            "hydra.sweep.dir=out",
        ],
    )
    assert done.returncode == 1
    infos = [json.loads((tmp_path / f"out/{i}/info.json").read_text()) for i in range(4)]
    assert [i["x"] for i in infos] == [0, 1, 2, 3], "the failed job #1 stopped none of the others"
    for info in infos:
        devices = info["BIREALNET_DEVICES"]
        assert info["CUDA_VISIBLE_DEVICES"] == info["ASCEND_RT_VISIBLE_DEVICES"] == devices
        assert devices == info["BIREALNET_SLOT"] and info["DEVICE_ID"] == "0"
    events = sorted([(i["start"], 1) for i in infos] + [(i["end"], -1) for i in infos])
    running, most = 0, 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 2, "two slots: two jobs at a time, never more"
    summary = done.stdout[done.stdout.index("device_pool: 1 of 4 job(s) failed:") :]
    assert "#1 (+x=1): rank 0 exited with code 1 after RuntimeError: job with x=1 fails" in summary
    assert str(tmp_path / "out/1/rank_0/log.txt") in summary


def test_device_pool_groups_and_fail_fast(tmp_path: Path) -> None:
    app = write_app(tmp_path, POOL_TASK.format(bad=0))
    done = run_app(
        app,
        [
            "-m",
            "hydra/launcher=device_pool",
            "hydra.launcher.devices=[4,5,6,7]",
            "hydra.launcher.devices_per_job=2",
            "hydra.launcher.fail_fast=true",
            "+x=0,1,2",
            "hydra.sweep.dir=out",
        ],
    )
    assert done.returncode == 1
    first = json.loads((tmp_path / "out/0/info.json").read_text())
    assert first["CUDA_VISIBLE_DEVICES"] == "4,5" and first["DEVICE_ID"] == "0"
    assert "#2 (+x=2): was not started: an earlier job failed and fail_fast is set" in done.stdout
    assert not (tmp_path / "out/2/rank_0").exists()
    bad = run_app(
        app,
        [
            "-m",
            "hydra/launcher=device_pool",
            "hydra.launcher.devices=[0,1,2]",
            "hydra.launcher.devices_per_job=2",
            "+x=0",
        ],
    )
    assert bad.stdout.splitlines()[0] == (
        "device_pool: 3 devices do not split into groups of devices_per_job=2: "
        "make len(devices) a multiple of it"
    )


@pytest.mark.slow
def test_device_pool_data_parallel_jobs_through_msrun(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "print('rank', os.environ['RANK_ID'], 'of', os.environ['RANK_SIZE'], "
        "'sees', os.environ['CUDA_VISIBLE_DEVICES'], 'device', os.environ['DEVICE_ID'])",
    )
    done = run_app(
        app,
        [
            "-m",
            "hydra/launcher=device_pool",
            "hydra.launcher.devices=[0,1,2,3]",
            "hydra.launcher.devices_per_job=2",
            "hydra.launcher.data_parallel=true",
            "+x=0,1",
            "hydra.sweep.dir=out",
        ],
        timeout=180,
    )
    assert done.returncode == 0, done.stdout
    for job, devices in ((0, "0,1"), (1, "2,3")):
        for rank in (0, 1):
            log = (tmp_path / f"out/{job}/rank_{rank}/log.txt").read_text()
            assert f"rank {rank} of 2 sees {devices} device {rank}" in log


def test_two_servers_share_one_run_folder(tmp_path: Path) -> None:
    """One rank table of two servers, a launcher on each (here both on this host, server_index 0 and 1),
    one shared run folder: each server keeps its launcher files apart, ranks are numbered across servers."""
    from hydra_plugins.birealnet_launchers import rank_table as rt

    table = rt.merge_rank_tables(
        [
            rt.build_rank_table([0], DEVICE_IPS[:1], server_id="10.0.0.1"),
            rt.build_rank_table([0], DEVICE_IPS[1:], server_id="10.0.0.2"),
        ]
    )
    table_file = rt.write_rank_table(table, tmp_path / "rank_table_2servers.json")
    app = write_app(tmp_path, "print('rank', os.environ['RANK_ID'], 'of', os.environ['RANK_SIZE'])")
    common = ["-m", "hydra/launcher=rank_table", f"hydra.launcher.rank_table={table_file}"]
    common += ["hydra.launcher.flat_single_job=true", "hydra.sweep.dir=shared"]
    servers = [
        subprocess.Popen(
            [sys.executable, str(app), *common, f"hydra.launcher.server_index={index}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in (0, 1)
    ]
    outputs = [server.communicate(timeout=120)[0] for server in servers]
    assert [server.returncode for server in servers] == [0, 0], outputs
    shared = tmp_path / "shared"
    assert (shared / ".launcher/job.pkl").is_file() and (shared / ".launcher/node_1/job.pkl").is_file()
    for rank, launch_dir in ((0, shared / ".launcher"), (1, shared / ".launcher/node_1")):
        assert env_of(shared / f"rank_{rank}")["RANK_TABLE_FILE"] == str(launch_dir / "rank_table.json")
        assert f"rank {rank} of 2" in (shared / f"rank_{rank}" / "log.txt").read_text()
    assert not (shared / "rank_1" / ".hydra").exists()
