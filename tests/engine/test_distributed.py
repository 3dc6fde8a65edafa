"""engine.distributed: the Dist record, how a process was launched, device checks, and a real 2-rank
dynamic cluster on the CPU (msrun through the msrun launcher): AllReduce and averaged gradients."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from birealnet_exp.engine import distributed
from birealnet_exp.engine.distributed import DeviceUnavailableError, Dist

REPO = Path(__file__).resolve().parents[2]


def test_dist_record() -> None:
    single = Dist()
    assert (single.device_target, single.device_id, single.rank, single.group_size) == ("CPU", 0, 0, 1)
    assert single.is_main and not single.distributed and single.launch == "single"
    worker = Dist("Ascend", 3, rank=3, group_size=8, local_rank=3, launch="rank_table", backend="hccl")
    assert worker.distributed and not worker.is_main


def test_launch_mode_reads_what_the_launcher_set() -> None:
    assert distributed.launch_mode({}) == "single"
    rank_table = {"RANK_TABLE_FILE": "/x/rank_table.json", "RANK_ID": "1", "RANK_SIZE": "8", "DEVICE_ID": "1"}
    assert distributed.launch_mode(rank_table) == "rank_table"
    assert distributed.launch_mode({**rank_table, "RANK_SIZE": "1"}) == "single"
    cluster = {
        "MS_ROLE": "MS_WORKER",
        "MS_WORKER_NUM": "2",
        "MS_SCHED_HOST": "127.0.0.1",
        "MS_SCHED_PORT": "8118",
    }
    assert distributed.launch_mode(cluster) == "dynamic_cluster"
    assert distributed.launch_mode({**cluster, **rank_table}) == "dynamic_cluster"


def test_bad_targets_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert distributed.normalize_target("ascend") == "Ascend"
    with pytest.raises(
        ValueError, match="hardware.device_target='tpu' is not a device: use CPU, GPU or Ascend"
    ):
        distributed.normalize_target("tpu")
    for key, value in {"RANK_TABLE_FILE": "/x.json", "RANK_ID": "0", "RANK_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(
        DeviceUnavailableError, match="needs Ascend, but hardware.device_target=CPU: use hydra/launcher=msrun"
    ):
        distributed.setup({"device_target": "CPU", "mode": "graph"})


def python(code: str, env: dict = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_single_cpu_process_and_missing_devices() -> None:
    """In a fresh process: a plain CPU setup; asking for GPU or Ascend here is a one-line error."""
    done = python(
        """
        from birealnet_exp.engine.distributed import setup, DeviceUnavailableError
        print("DIST", setup({"device_target": "cpu", "mode": "pynative"}))
        for target in ("GPU", "Ascend"):
            try:
                setup({"device_target": target, "mode": "graph"})
            except DeviceUnavailableError as e:
                print("ERROR", e)
    """,
        env={"PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert (
        "DIST Dist(device_target='CPU', device_id=0, rank=0, group_size=1, local_rank=0, launch='single'"
        in done.stdout
    )
    errors = [line for line in done.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2
    assert errors[0].startswith(
        "ERROR hardware.device_target=GPU but this machine has no usable GPU for mindspore"
    )
    assert errors[1].endswith("or use hardware=cpu (or cpu2)")


APP = """
import json, os
import hydra

@hydra.main(version_base=None, config_path=None)
def task(cfg):
    import mindspore as ms
    from mindspore import nn, ops
    from birealnet_exp.engine.distributed import setup
    dist = setup({"device_target": "CPU", "mode": "pynative"})
    summed = ops.AllReduce()(ms.Tensor([float(dist.rank + 1)] * 3, ms.float32))
    weight = ms.Parameter(ms.Tensor([0.0], ms.float32), name="w")
    grads = nn.DistributedGradReducer([weight])((ms.Tensor([float(dist.rank + 1)], ms.float32),))
    info = {
        "dist": [dist.rank, dist.group_size, dist.launch, dist.backend, dist.is_main],
        "allreduce": summed.asnumpy().tolist(), "grad": grads[0].asnumpy().tolist(),
        "parallel_mode": ms.get_auto_parallel_context("parallel_mode"),
        "gradients_mean": ms.get_auto_parallel_context("gradients_mean"),
        "device_num": ms.get_auto_parallel_context("device_num"),
    }
    # the project's TrainStep, compiled in graph mode under the data-parallel context: one SGD step
    # (lr 1) on loss = sum(W x) with x different on each rank moves W by minus the mean of the x's
    from birealnet_exp.engine.train_step import TrainStep

    class SumLoss(nn.Cell):
        def construct(self, logits, labels):
            return (logits * labels).sum()

    ms.set_context(mode=ms.GRAPH_MODE)
    dense = nn.Dense(3, 1, weight_init="zeros", has_bias=False)
    step = TrainStep(dense, SumLoss(), nn.SGD(dense.trainable_params(), 1.0), None, reduce_grads=True)
    x = ms.Tensor([[1.0 + dist.rank, 2.0, 3.0 * dist.rank]], ms.float32)
    step(x, ms.Tensor([[1.0]], ms.float32))
    info["stepped"] = dense.weight.asnumpy().tolist()
    with open(f"rank_{dist.rank}.json", "w") as f:
        json.dump(info, f)
    return info

if __name__ == "__main__":
    task()
"""


def test_two_cpu_ranks_in_a_dynamic_cluster(tmp_path: Path) -> None:
    """msrun starts 2 workers on loopback; setup() joins them; AllReduce sums, gradients are averaged."""
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "multirun_launchers")])}
    done = subprocess.run(
        [
            sys.executable,
            str(app),
            "-m",
            "hydra/launcher=msrun",
            "hydra.launcher.worker_num=2",
            "hydra.sweep.dir=out",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + "".join(
        p.read_text()[-3000:] for p in sorted((tmp_path / "out").glob("0/rank_*/log.txt"))
    )
    for rank in (0, 1):
        info = json.loads((tmp_path / f"rank_{rank}.json").read_text())
        assert info["dist"] == [rank, 2, "dynamic_cluster", "mccl", rank == 0]
        assert info["allreduce"] == [3.0, 3.0, 3.0]
        assert info["grad"] == [1.5], "DistributedGradReducer averages: (1 + 2) / 2"
        # mean of [1, 2, 0] and [2, 2, 3]: averaged once (not summed, not reduced twice by the context)
        assert info["stepped"] == [[-1.5, -2.0, -1.5]]
        assert (info["parallel_mode"], info["gradients_mean"], info["device_num"]) == (
            "data_parallel",
            True,
            2,
        )


def test_sync_batchnorm_only_on_multi_card_ascend() -> None:
    assert distributed.wants_sync_batchnorm(Dist("Ascend", 0, 0, 8, launch="rank_table", backend="hccl"))
    assert not distributed.wants_sync_batchnorm(Dist("Ascend"))
    assert not distributed.wants_sync_batchnorm(Dist("CPU", 0, 0, 2, launch="dynamic_cluster"))
    assert not distributed.wants_sync_batchnorm(Dist("GPU", 0, 0, 8, launch="dynamic_cluster"))


def test_sync_batchnorm_takes_over_every_batchnorm_and_its_parameters() -> None:
    """The real SyncBatchNorm on the CPU, with process_groups=0 (no group to sync over in one process):
    every BatchNorm2d replaced, the same Parameter objects (names, values, requires_grad) and output."""
    import mindspore as ms
    import numpy as np
    from mindspore import nn

    from birealnet_exp.models.birealnet import birealnet18

    ms.set_seed(0)
    network = birealnet18(num_classes=10, width=8, stem="small")
    params = [(p.name, id(p), p.requires_grad) for p in network.get_parameters()]
    batch_norms = sum(type(c) is nn.BatchNorm2d for _, c in network.cells_and_names())
    images = ms.Tensor(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))
    network.set_train(False)
    before = network(images).asnumpy()
    assert distributed.sync_batchnorm(network, process_groups=0) == batch_norms > 0
    assert not any(type(c) is nn.BatchNorm2d for _, c in network.cells_and_names())
    assert sum(type(c) is nn.SyncBatchNorm for _, c in network.cells_and_names()) == batch_norms
    assert [(p.name, id(p), p.requires_grad) for p in network.get_parameters()] == params
    assert "layer1.0.bn1.moving_mean" in [name for name, _, _ in params]
    np.testing.assert_array_equal(network(images).asnumpy(), before)
    network.set_train(True)
    assert network(images).shape == (2, 10)


def test_digits_train_shards_are_disjoint_and_cover_the_split() -> None:
    """What each rank of a data-parallel job reads: half of the train split each, no sample twice."""
    from birealnet_exp.data.digits import create_digits

    def labels_and_pixels(rank: int) -> set:
        split = create_digits(
            split="train",
            batch_size=50,
            augment={"crop_padding": 0, "hflip": 0.0, "label_smoothing": 0.0},
            dist=Dist(rank=rank, group_size=2, launch="dynamic_cluster"),
        )
        seen = set()
        for images, labels in split.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
            seen.update((int(label), image.tobytes()) for image, label in zip(images, labels, strict=True))
        return seen

    whole = labels_and_pixels(0) | labels_and_pixels(1)
    first, second = labels_and_pixels(0), labels_and_pixels(1)
    assert len(first) == len(second) == 750 and not first & second and len(whole) == 1500


def test_device_check_before_launch(capsys: pytest.CaptureFixture) -> None:
    """hydra.callbacks.device_check of gpu8/ascend8: one line and exit 2 here; nothing for CPU, nor when
    another launcher (submitit_slurm) starts the ranks on other machines."""
    from omegaconf import OmegaConf

    def config(target: str, launcher: str) -> object:
        return OmegaConf.create(
            {"hardware": {"device_target": target}, "hydra": {"launcher": {"_target_": launcher}}}
        )

    ours = "hydra_plugins.birealnet_launchers.msrun_launcher.MsrunLauncher"
    with pytest.raises(SystemExit) as stopped:
        distributed.DeviceCheck().on_multirun_start(config("GPU", ours))
    assert stopped.value.code == 2
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith("hardware.device_target=GPU but this machine has no")
    )
    distributed.DeviceCheck().on_multirun_start(config("CPU", ours))
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    distributed.DeviceCheck().on_multirun_start(config("Ascend", slurm))
