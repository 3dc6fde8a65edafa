"""Trainer callbacks: the progress bar and the run folder (metrics, curves, summary, checkpoints)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Callback:
    """Hooks the Trainer calls; each does nothing unless overridden."""

    def on_fit_start(self, trainer: Any) -> None: ...

    def on_epoch_start(self, trainer: Any, epoch: int) -> None: ...

    def on_step_end(self, trainer: Any, step: int, loss: float, lr: float, img_per_s: float) -> None: ...

    def on_epoch_end(self, trainer: Any, record: dict) -> None: ...

    def on_fit_end(self, trainer: Any, summary: dict) -> None: ...


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: a temporary file in the same folder, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)  # NamedTemporaryFile creates 0600; a run folder is for people to read
    os.replace(tmp.name, path)


def save_checkpoint_atomic(save_obj: Any, path: Path, append_dict: dict | None = None) -> None:
    """mindspore.save_checkpoint into a temporary file beside `path`, then an atomic rename."""
    import mindspore as ms

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.ckpt")  # save_checkpoint insists on the .ckpt suffix
    try:
        ms.save_checkpoint(save_obj, str(tmp), append_dict=append_dict)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ProgressBar(Callback):
    """A tqdm bar per epoch showing loss, lr and img/s; silent when stderr is not a terminal."""

    def __init__(self, log_every: int = 10) -> None:
        self.log_every = max(1, int(log_every))
        self.bar = None

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{trainer.epochs}",
            leave=False,
            disable=None,
        )

    def on_step_end(self, trainer: Any, step: int, loss: float, lr: float, img_per_s: float) -> None:
        self.bar.update(1)
        if self.bar.n % self.log_every == 0 or self.bar.n == self.bar.total:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{img_per_s:.0f}")

    def on_epoch_end(self, trainer: Any, record: dict) -> None:
        if self.bar is not None:
            self.bar.close()


class RunFolder(Callback):
    """metrics.jsonl (one object per epoch), curves.png, summary.json: what a person reads after a run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"

    def on_fit_start(self, trainer: Any) -> None:
        """A resumed run keeps the records of the epochs it resumes after and drops any later ones."""
        if self.metrics_path.exists():
            kept = [r for r in read_metrics(self.metrics_path) if r["epoch"] <= trainer.start_epoch]
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def on_epoch_end(self, trainer: Any, record: dict) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        plot_curves(read_metrics(self.metrics_path), self.run_dir / "curves.png")

    def on_fit_end(self, trainer: Any, summary: dict) -> None:
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")


class Checkpointer(Callback):
    """checkpoints/: last.ckpt (network, optimizer, loss scale, position) after every epoch, the resume
    point; epoch_NNNN.ckpt (the same) every `every` epochs, the newest `keep` kept; best.ckpt (network
    only) on a new best val top-1. Every file is written atomically."""

    def __init__(self, run_dir: Path, every: int = 1, keep: int = 5) -> None:
        from birealnet_exp.errors import UsageError

        if every < 1 or keep < 0:
            raise UsageError(
                f"need train.save_every >= 1 and train.keep_checkpoints >= 0, got {every}, {keep}"
            )
        self.dir = Path(run_dir) / "checkpoints"
        self.every = int(every)
        self.keep = int(keep)

    def epoch_files(self) -> list[Path]:
        """The epoch_NNNN.ckpt files, oldest first."""
        return sorted(self.dir.glob("epoch_*.ckpt"), key=lambda p: int(p.stem.split("_")[1]))

    def on_epoch_end(self, trainer: Any, record: dict) -> None:
        position = trainer.position(record["epoch"])
        save_checkpoint_atomic(trainer.train_step, self.dir / "last.ckpt", append_dict=position)
        if self.keep and record["epoch"] % self.every == 0:
            save_checkpoint_atomic(
                trainer.train_step, self.dir / f"epoch_{record['epoch']:04d}.ckpt", append_dict=position
            )
            for old in self.epoch_files()[: -self.keep]:
                old.unlink()
        if trainer.best_epoch == record["epoch"]:
            save_checkpoint_atomic(trainer.network, self.dir / "best.ckpt", append_dict=position)
            log.info(
                "new best val_top1 %.4f at epoch %d: %s",
                trainer.best_val_top1,
                record["epoch"],
                self.dir / "best.ckpt",
            )


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_curves(records: list[dict], path: Path) -> None:
    """Loss, top-1 and LR against epoch, one panel each, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, [r["train_loss"] for r in records], "o-", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in records], "o-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [r["val_top1"] for r in records], "o-", label="val top-1")
    ax_acc.plot(epochs, [r["val_top5"] for r in records], "o-", label="val top-5")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    ax_acc.legend()
    ax_lr.plot(epochs, [r["lr"] for r in records], "o-")
    ax_lr.set(xlabel="epoch", ylabel="lr", title="learning rate (epoch end)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
