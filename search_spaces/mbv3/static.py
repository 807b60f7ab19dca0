"""Plain (static) MobileNetV3 modules: what ``extract`` returns and what devices run.

Module and parameter names match the supernet's (``stages.2.1.dw_conv.weight``...), so
copying weights out (``extract``) and back in (``absorb``) is a name-by-name slice.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from search_spaces.mbv3.arch import MBV3Arch
from search_spaces.mbv3.config import MBV3Config, make_divisible


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def se_channels(mid: int) -> int:
    """Squeeze-excite bottleneck width of OFA's ``SEModule`` (reduction 4, multiple of 8)."""
    return make_divisible(mid // 4)


@functools.lru_cache(maxsize=1024)  # called for every block of every arch a search prices
def mid_channels(in_channels: int, expand: int) -> int:
    """Expanded width of an inverted-residual block (OFA: ``make_divisible(round(c * e))``)."""
    return make_divisible(round(in_channels * expand))


class ConvBNAct(nn.Sequential):
    """Convolution, batch norm, activation (the stem and the final expand layer)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = activation(act)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = torch.relu(self.reduce(s))
        return x * nn.functional.hardsigmoid(self.expand(s))


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, kxk depthwise, optional SE, 1x1 project."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, mid: int, act: str, se: bool
    ) -> None:
        super().__init__()
        self.residual = stride == 1 and cin == cout
        if mid != cin:
            self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(mid)
        else:
            self.expand_conv = None
        self.dw_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.dw_bn = nn.BatchNorm2d(mid)
        self.se = SqueezeExcite(mid, se_channels(mid)) if se else None
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(cout)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand_conv is not None:
            out = self.act(self.expand_bn(self.expand_conv(out)))
        out = self.act(self.dw_bn(self.dw_conv(out)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project_conv(out))
        return out + x if self.residual else out


class Head(nn.Module):
    """Final 1x1 expand, global pool, feature mix (no BN), dropout, classifier (OFA's head)."""

    def __init__(self, cin: int, cfg: MBV3Config) -> None:
        super().__init__()
        self.final_expand = ConvBNAct(cin, cfg.final_expand_width, 1, 1, "hswish")
        self.feature_mix = nn.Conv2d(cfg.final_expand_width, cfg.feature_mix_width, 1, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.feature_mix_width, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return classify(self, self.final_expand(x))


def classify(head: Head | HeadTail, x: torch.Tensor) -> torch.Tensor:
    """Global pool, feature mix with h-swish, dropout, classifier: the head after its final expand."""
    x = x.mean((2, 3), keepdim=True)
    x = nn.functional.hardswish(head.feature_mix(x)).flatten(1)
    return head.classifier(head.dropout(x))


class HeadTail(nn.Module):
    """The part of ``head`` after its final expand layer (the ``head`` block of the space),
    sharing ``head``'s weights: the last segment when a network is split to run on two devices."""

    def __init__(self, head: Head) -> None:
        super().__init__()
        self.feature_mix, self.dropout, self.classifier = head.feature_mix, head.dropout, head.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return classify(self, x)


def build_stem(cfg: MBV3Config) -> tuple[ConvBNAct, MBConv]:
    """The fixed stem convolution and first block (3x3 depthwise, expand 1, ReLU)."""
    stem = ConvBNAct(cfg.in_channels, cfg.stem_width, 3, cfg.stem_stride, "hswish")
    first = MBConv(cfg.stem_width, cfg.first_block_width, 3, 1, cfg.stem_width, "relu", False)
    return stem, first


class StaticMobileNetV3(nn.Module):
    """A sub-network of the MobileNetV3 space as a plain ``nn.Module`` (no elastic ops)."""

    def __init__(self, cfg: MBV3Config, arch: MBV3Arch) -> None:
        super().__init__()
        self.config = cfg
        self.arch = arch
        self.stem, self.first_block = build_stem(cfg)
        cin = cfg.first_block_width
        stages = []
        for s, blocks in enumerate(arch.stage_blocks()):
            cout = cfg.stage_widths[s]
            layers = []
            for j, (k, e) in enumerate(blocks):
                stride = cfg.stage_strides[s] if j == 0 else 1
                act, se = cfg.stage_activations[s], cfg.stage_se[s]
                layers.append(MBConv(cin, cout, k, stride, mid_channels(cin, e), act, se))
                cin = cout
            stages.append(nn.ModuleList(layers))
        self.stages = nn.ModuleList(stages)
        self.head = Head(cin, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(x))
        for stage in self.stages:
            for block in stage:
                x = block(x)
        return self.head(x)

    def segments(self) -> list[nn.Module]:
        """One module per block of the space's ``blocks(arch)``, in order, sharing this
        network's weights: stem, first block, every MBConv, final expand, the rest of the head."""
        blocks = [block for stage in self.stages for block in stage]
        return [self.stem, self.first_block, *blocks, self.head.final_expand, HeadTail(self.head)]
