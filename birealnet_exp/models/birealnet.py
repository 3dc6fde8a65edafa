"""Bi-Real Net (Liu et al., ECCV 2018): the seed's MindSpore network ("upstream") and the paper's original."""

from __future__ import annotations

from collections.abc import Sequence

from mindspore import Tensor, nn, ops
from mindspore.common.initializer import Uniform

from birealnet_exp.errors import UsageError
from birealnet_exp.models.binary import BinaryConv2d, kaiming_uniform

VARIANTS = ("upstream", "paper")
STEMS = ("imagenet", "small")
# binary mode -> (binary weights, binary activations) of the 3x3 block convs
BINARY_MODES = {"both": (True, True), "activations": (False, True), "none": (False, False)}


class HardTanh(nn.Cell):
    """Clip to [-1, 1]."""

    def construct(self, x: Tensor) -> Tensor:
        return ops.clamp(x, -1.0, 1.0)


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Conv2d:
    """Real-valued conv without bias, Kaiming-uniform (a = sqrt 5) init."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        pad_mode="pad",
        padding=padding,
        has_bias=False,
        weight_init=kaiming_uniform((out_channels, in_channels, kernel_size, kernel_size)),
    )


class BasicBlock(nn.Cell):
    """out = BN(BinaryConv3x3(x)) + shortcut(x), followed by HardTanh in the upstream variant."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, variant: str, binary: str) -> None:
        super().__init__()
        upstream = variant == "upstream"
        binary_weights, binary_activations = BINARY_MODES[binary]
        self.binary_conv = BinaryConv2d(
            in_channels,
            out_channels,
            kernel_size=3,
            stride=stride,
            pad_mode="same" if upstream else "pad",
            padding=0 if upstream else 1,
            binary_weights=binary_weights,
            binary_activations=binary_activations,
            std_normalize=upstream,
        )
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            # index 0 is the pooling so the parameters are downsample.1.* and downsample.2.*
            pool = nn.AvgPool2d(kernel_size=2, stride=2) if stride == 2 else nn.Identity()
            self.downsample = nn.SequentialCell(
                [pool, _conv(in_channels, out_channels, 1, 1, 0), nn.BatchNorm2d(out_channels)]
            )
        self.act = HardTanh() if upstream else None

    def construct(self, x: Tensor) -> Tensor:
        residual = x
        if self.downsample is not None:
            residual = self.downsample(x)
        out = self.bn1(self.binary_conv(x)) + residual
        if self.act is not None:
            out = self.act(out)
        return out


class BiRealNet(nn.Cell):
    """Bi-Real Net: stem, four stages of BasicBlocks (widths w, 2w, 4w, 8w), pooled linear head."""

    def __init__(
        self,
        layers: Sequence[int],
        num_classes: int = 1000,
        variant: str = "upstream",
        width: int = 64,
        stem: str = "imagenet",
        binary: str = "both",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        _check_choice("variant", variant, VARIANTS)
        _check_choice("stem", stem, STEMS)
        _check_choice("binary", binary, tuple(BINARY_MODES))
        if len(layers) != 4 or min(layers) < 1:
            raise UsageError(f"layers must be four positive block counts, got {list(layers)}")
        if width < 1 or num_classes < 1 or in_channels < 1:
            raise UsageError(
                f"width, num_classes and in_channels must be positive, got width={width}, "
                f"num_classes={num_classes}, in_channels={in_channels}"
            )
        self.variant = variant
        self.width = width
        self.stem = stem
        self.binary = binary
        self.num_classes = num_classes
        upstream = variant == "upstream"

        if stem == "imagenet":
            self.conv1 = _conv(in_channels, width, 7, 2, 3)
        else:
            self.conv1 = _conv(in_channels, width, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = HardTanh() if upstream else None
        self.maxpool = None
        if stem == "imagenet":
            self.maxpool = (
                nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
                if upstream
                else nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
            )

        stage_widths = [width, 2 * width, 4 * width, 8 * width]
        stages = []
        channels = width
        for index, (blocks, stage_width) in enumerate(zip(layers, stage_widths, strict=True)):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(channels, stage_width, stride, variant, binary)]
            stage += [BasicBlock(stage_width, stage_width, 1, variant, binary) for _ in range(blocks - 1)]
            stages.append(nn.SequentialCell(stage))
            channels = stage_width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.bn2 = nn.BatchNorm2d(channels) if upstream else None
        bound = channels**-0.5
        self.fc = nn.Dense(
            channels,
            num_classes,
            weight_init=kaiming_uniform((num_classes, channels)),
            bias_init=Uniform(bound),
        )

    def construct(self, x: Tensor) -> Tensor:
        x = self.bn1(self.conv1(x))
        if self.act is not None:
            x = self.act(x)
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        if self.bn2 is not None:
            x = self.bn2(ops.mean(x, axis=(2, 3), keep_dims=True))
            x = x.reshape(x.shape[0], -1)
        else:
            x = ops.mean(x, axis=(2, 3), keep_dims=False)
        return self.fc(x)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _build(layers: Sequence[int], pretrained: str | None, **kwargs: object) -> BiRealNet:
    network = BiRealNet(layers, **kwargs)
    if pretrained:
        from birealnet_exp.models.checkpoints import load_pretrained

        load_pretrained(network, pretrained)
    return network


def birealnet18(
    num_classes: int = 1000,
    variant: str = "upstream",
    width: int = 64,
    stem: str = "imagenet",
    binary: str = "both",
    pretrained: str | None = None,
    in_channels: int = 3,
) -> BiRealNet:
    """Bi-Real Net 18: BasicBlock stages [4, 4, 4, 4]; `pretrained` is a checkpoint path to load."""
    return _build(
        [4, 4, 4, 4],
        pretrained,
        num_classes=num_classes,
        variant=variant,
        width=width,
        stem=stem,
        binary=binary,
        in_channels=in_channels,
    )


def birealnet34(
    num_classes: int = 1000,
    variant: str = "upstream",
    width: int = 64,
    stem: str = "imagenet",
    binary: str = "both",
    pretrained: str | None = None,
    in_channels: int = 3,
) -> BiRealNet:
    """Bi-Real Net 34: BasicBlock stages [6, 8, 12, 6]; `pretrained` is a checkpoint path to load."""
    return _build(
        [6, 8, 12, 6],
        pretrained,
        num_classes=num_classes,
        variant=variant,
        width=width,
        stem=stem,
        binary=binary,
        in_channels=in_channels,
    )
