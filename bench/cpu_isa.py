"""Train-step speed of BiRealNet-18 on the CPU under each oneDNN ISA cap, side by side in one run.

python bench/cpu_isa.py [--width 16] [--batch 64] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import append_section

WORKER = r"""
import json, sys, time
import numpy as np
import mindspore as ms
from mindspore import nn
from birealnet_exp.models.birealnet import birealnet18
from birealnet_exp.engine.train_step import TrainStep
from birealnet_exp.optim.optimizers import adam
width, batch, steps, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
ms.set_device("CPU")
ms.set_seed(0)
net = birealnet18(num_classes=10, width=width, stem="small")
step = TrainStep(net, nn.CrossEntropyLoss(), adam(net, lr=1e-3), 5.0)
x = ms.Tensor(np.random.randn(batch, 3, 32, 32).astype(np.float32))
y = ms.Tensor(np.random.randint(0, 10, batch).astype(np.int32))
t0 = time.perf_counter(); step(x, y).asnumpy(); first = time.perf_counter() - t0
times = []
while len(times) < steps and sum(times) < 60:  # at most about a minute of steps per setting
    t0 = time.perf_counter(); step(x, y).asnumpy(); times.append(time.perf_counter() - t0)
print(json.dumps({"first_step_s": first, "img_per_s": batch / float(np.median(times)), "steps": len(times)}))
"""


def measure(isa: str | None, args: argparse.Namespace, mode: str) -> dict:
    env = dict(os.environ)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    cmd = [sys.executable, "-c", WORKER, str(args.width), str(args.batch), str(args.steps), mode]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rows = [
        "| mode | ONEDNN_MAX_CPU_ISA | first step s | steps timed | img/s (median step) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for mode in ("graph", "pynative"):
        results = {isa: measure(isa, args, mode) for isa in (None, "AVX2")}
        base = results[None]["img_per_s"]
        for isa, r in results.items():
            rows.append(
                f"| {mode} | {isa or '(unset: oneDNN default)'} | {r['first_step_s']:.1f} | {r['steps']} | "
                f"{r['img_per_s']:.1f} | {r['img_per_s'] / base:.1f}x |"
            )
    command = f"python bench/cpu_isa.py --width {args.width} --batch {args.batch} --steps {args.steps}"
    append_section(
        f"CPU train step, BiRealNet-18 width {args.width}, batch {args.batch}, 32 px",
        command,
        "\n".join(rows),
    )


if __name__ == "__main__":
    main()
