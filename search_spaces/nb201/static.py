"""Plain modules of the NAS-Bench-201 network, so a cell can be timed (TVM) and exported.

The macro skeleton is the benchmark's CIFAR network: a 3x3 stem convolution, three
stages of ``N`` cells with ``C``, ``2C`` and ``4C`` channels separated by residual
reduction blocks, and a head (batch norm, ReLU, global pooling, classifier). Operations
follow the benchmark: convolutions are ReLU-Conv-BN; ``avg_pool_3x3`` does not count
padding; ``none`` edges contribute nothing and are left out of the graph (a node whose
inputs are all ``none`` is a zero tensor, as the benchmark's ``x.mul(0)`` is).
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.nb201.arch import EDGES, NB201Arch


class ReLUConvBN(nn.Sequential):
    """ReLU, ``kernel`` x ``kernel`` convolution (no bias), batch norm."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.act = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)


class AvgPool3x3(nn.AvgPool2d):
    """3x3 average pooling, stride 1, padding not counted (the benchmark's ``avg_pool_3x3``)."""

    def __init__(self) -> None:
        super().__init__(3, stride=1, padding=1, count_include_pad=False)


def make_op(name: str, channels: int) -> nn.Module:
    """The module of one edge operation (``none`` has no module: it is left out)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise ValueError(f"nb201 op {name!r} has no module")


class Cell(nn.Module):
    """One NAS-Bench-201 cell: node ``i`` is the sum of its edges' ops on earlier nodes."""

    def __init__(self, arch: NB201Arch, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict()
        self.inputs: list[list[tuple[str, int]]] = [[] for _ in range(4)]
        for (to_node, from_node), op in zip(EDGES, arch.ops):
            if op == "none":
                continue
            key = f"{to_node}_{from_node}"
            self.edges[key] = make_op(op, channels)
            self.inputs[to_node].append((key, from_node))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to_node in (1, 2, 3):
            terms = [self.edges[key](nodes[src]) for key, src in self.inputs[to_node]]
            node = terms[0] if terms else torch.zeros_like(x)
            for t in terms[1:]:
                node = node + t
            nodes.append(node)
        return nodes[3]


class ResidualReduction(nn.Module):
    """The benchmark's reduction block: two ReLU-Conv-BN (the first with stride 2), plus a
    shortcut of 2x2 average pooling and a 1x1 convolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, stride=2)
        self.conv_b = ReLUConvBN(cout, cout, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Stem(nn.Sequential):
    """3x3 convolution and batch norm on the image."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)


class Head(nn.Module):
    """Batch norm, ReLU, global average pooling, linear classifier."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(x)).mean((2, 3))
        return self.classifier(x)


class NB201Network(nn.Module):
    """The whole NAS-Bench-201 network of ``arch`` (the same cell in every position)."""

    def __init__(
        self,
        arch: NB201Arch,
        channels: tuple[int, ...] = (16, 32, 64),
        cells_per_stage: int = 5,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem = Stem(in_channels, channels[0])
        layers: list[nn.Module] = []
        for s, c in enumerate(channels):
            if s > 0:
                layers.append(ResidualReduction(channels[s - 1], c))
            layers.extend(Cell(arch, c) for _ in range(cells_per_stage))
        self.layers = nn.Sequential(*layers)
        self.head = Head(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions, unit batch norms, small linear weights (timing only)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
