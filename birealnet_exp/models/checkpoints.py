"""Load network weights from our checkpoints or the seed's training checkpoints, and convert the latter."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import mindspore as ms
from mindspore import Parameter, nn

from birealnet_exp.errors import UsageError

logger = logging.getLogger(__name__)

NETWORK_PREFIX = "model."
# Entries of the seed's training checkpoints that belong to the optimizer, loss scale or loop state.
TRAINING_STATE_PREFIXES = ("moments.", "adam_m.", "adam_v.", "accum.", "momentum.", "moment1.", "moment2.")
TRAINING_STATE_KEYS = frozenset(
    {
        "momentum",
        "scale_sense",
        "global_step",
        "learning_rate",
        "beta1_power",
        "beta2_power",
        "current_iterator_step",
        "last_overflow_iterator_step",
        "epoch_num",
        "step_num",
        "loss_scale",
        # what our own last.ckpt carries besides the network and the optimizer
        "epoch",
        "step",
        "best_val_top1",
        "best_epoch",
        "loss_scale_good_steps",
        "overflow_steps",
    }
)


class CheckpointError(UsageError):
    """A checkpoint cannot be read or does not fit the network; the message names the fix."""


@dataclass
class LoadReport:
    """What a load did: network names loaded and missing, checkpoint keys ignored, prefix stripped."""

    path: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    stripped_prefix: bool = False

    def summary(self) -> str:
        prefix = f", stripped the '{NETWORK_PREFIX}' prefix" if self.stripped_prefix else ""
        return (
            f"checkpoint {self.path}: loaded {len(self.loaded)} parameters{prefix}, "
            f"ignored {len(self.ignored)} non-network entries, {len(self.missing)} network parameters "
            f"missing"
        )


def read_checkpoint(path: str | os.PathLike) -> dict[str, Parameter]:
    """Read a MindSpore checkpoint into a name -> Parameter dict; unreadable files raise CheckpointError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file; check the path")
    if os.path.getsize(path) == 0:
        raise CheckpointError(
            f"checkpoint {path} is empty (0 bytes), probably an interrupted save; re-save or re-download it"
        )
    try:
        params = ms.load_checkpoint(path)
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError with C++ stack text
        logger.debug("load_checkpoint(%s) failed: %r", path, exc)
        message = (
            f"checkpoint {path} cannot be read: the file is corrupt, truncated or not a MindSpore "
            f"checkpoint ({type(exc).__name__}); re-save or re-download it"
        )
        raise CheckpointError(message) from None
    if not params:
        raise CheckpointError(f"checkpoint {path} holds no parameters; re-save or re-download it")
    return params


def _network_keys(checkpoint: dict[str, Parameter], names: set[str]) -> tuple[dict[str, str], bool]:
    """Map network parameter name -> checkpoint key, stripping `model.` where that matches more names."""
    plain = {key: key for key in checkpoint if key in names}
    prefixed = {
        key[len(NETWORK_PREFIX) :]: key
        for key in checkpoint
        if key.startswith(NETWORK_PREFIX) and key[len(NETWORK_PREFIX) :] in names
    }
    if len(prefixed) > len(plain):
        return prefixed, True
    return plain, False


def load_pretrained(network: nn.Cell, path: str | os.PathLike, strict: bool = False) -> LoadReport:
    """Load the network's parameters from a checkpoint of ours or of the seed; return what happened.

    Shape mismatches raise CheckpointError; with `strict`, so do missing network parameters.
    """
    path = os.fspath(path)
    checkpoint = read_checkpoint(path)
    targets = network.parameters_dict()
    key_of, stripped = _network_keys(checkpoint, set(targets))
    if not key_of:
        sample = ", ".join(list(checkpoint)[:3])
        raise CheckpointError(
            f"checkpoint {path} shares no parameter name with the network (it holds "
            f"{sample}, ...; the network expects {next(iter(targets))}, ...); "
            f"load a checkpoint of this architecture"
        )
    to_load: dict[str, Parameter] = {}
    for name, key in key_of.items():
        source, target = checkpoint[key], targets[name]
        if tuple(source.shape) != tuple(target.shape):
            raise CheckpointError(
                f"checkpoint {path}: '{key}' has shape {tuple(source.shape)} but the network's '{name}' has "
                f"shape {tuple(target.shape)}; build the model with the checkpoint's settings "
                f"(arch, width, num_classes, stem, in_channels)"
            )
        data = source if source.dtype == target.dtype else source.astype(target.dtype)
        to_load[name] = Parameter(data, name=name, requires_grad=target.requires_grad)
    ms.load_param_into_net(network, to_load, strict_load=False)

    report = LoadReport(
        path=path,
        loaded=sorted(to_load),
        missing=[name for name in targets if name not in to_load],
        ignored=[key for key in checkpoint if key not in set(key_of.values())],
        stripped_prefix=stripped,
    )
    _log(report)
    if strict and report.missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {len(report.missing)} network parameters "
            f"(first: {report.missing[0]}); use a complete checkpoint or strict=False"
        )
    return report


def _is_training_state(key: str) -> bool:
    return key in TRAINING_STATE_KEYS or key.startswith(TRAINING_STATE_PREFIXES)


def convert_seed_checkpoint(
    src: str | os.PathLike, dst: str | os.PathLike, network: nn.Cell | None = None
) -> LoadReport:
    """Write a network-only checkpoint of `src` to `dst` (plain names, no optimizer or loss-scale state).

    With `network`, keep exactly its parameters (shapes checked); without, keep the `model.` entries or,
    if there are none, every entry that is not optimizer or loop state.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if network is not None:
        report = load_pretrained(network, src)
        loaded = set(report.loaded)
        keep = {name: param for name, param in network.parameters_dict().items() if name in loaded}
    else:
        checkpoint = read_checkpoint(src)
        stripped = any(key.startswith(NETWORK_PREFIX) for key in checkpoint)
        if stripped:
            keep = {
                key[len(NETWORK_PREFIX) :]: param
                for key, param in checkpoint.items()
                if key.startswith(NETWORK_PREFIX)
            }
        else:
            keep = {key: param for key, param in checkpoint.items() if not _is_training_state(key)}
        kept_keys = {NETWORK_PREFIX + name if stripped else name for name in keep}
        report = LoadReport(
            path=src,
            loaded=sorted(keep),
            stripped_prefix=stripped,
            ignored=[key for key in checkpoint if key not in kept_keys],
        )
        _log(report)
    # write next to dst and rename, so a failed write never leaves a half checkpoint under dst
    tmp = f"{dst}.tmp.ckpt"
    ms.save_checkpoint([{"name": name, "data": param} for name, param in keep.items()], tmp)
    os.replace(tmp, dst)
    logger.info("wrote network-only checkpoint %s (%d parameters)", dst, len(keep))
    return report


def _log(report: LoadReport) -> None:
    logger.info(report.summary())
    for key in report.ignored:
        logger.debug("ignored checkpoint entry %s", key)
    for name in report.missing:
        logger.debug("network parameter %s missing from the checkpoint", name)
