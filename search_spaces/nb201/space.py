"""The ``nb201`` search space: NAS-Bench-201 cells in the benchmark's CIFAR skeleton.

A tabular benchmark space: every one of the 15,625 cells can be listed, and accuracy and
measured latency come from tables read elsewhere (``nas.tabular`` and
``latency_predictors.nb201_table``); this module reads no data beyond the packaged index
order. It still builds real networks and blocks, so devices can be profiled on it.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
from torch import nn

from search_spaces._base import BlockSpec, Cut, SearchSpace
from search_spaces._registry import register_space
from search_spaces.nb201.arch import EDGES, NUM_ARCHS, OPS, NB201Arch
from search_spaces.nb201.static import (
    AvgPool3x3,
    Head,
    NB201Network,
    ReLUConvBN,
    ResidualReduction,
    Stem,
    init_weights,
)

_CONV_KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201: six edges, five ops each, in a fixed stem/3-stage/head network.

    The defaults are the benchmark's CIFAR-10 network (``C=16``, ``N=5``, 32x32 inputs);
    CIFAR-100 is ``num_classes=100`` and ImageNet16-120 ``num_classes=120, resolution=16``.
    Architectures parse from a JSON object, a cell string or an NB201 index
    (:meth:`arch_from_json`).

    Example::

        space = get_space("nb201")
        arch = space.arch_from_json(1)            # NAS-Bench-201 index 1
        space.flops(arch), len(space.enumerate())  # MACs at batch 1, 15625
        model = space.build_static(arch)           # a plain nn.Module
    """

    name = "nb201"

    def __init__(
        self,
        num_classes: int = 10,
        resolution: int = 32,
        channels: tuple[int, ...] = (16, 32, 64),
        cells_per_stage: int = 5,
        in_channels: int = 3,
    ) -> None:
        channels = tuple(int(c) for c in channels)
        if len(channels) != 3 or min(channels) <= 0:
            raise ValueError(f"nb201 channels needs 3 positive widths, got {list(channels)}")
        if cells_per_stage < 1 or num_classes < 1 or resolution < 4:
            raise ValueError("nb201 needs cells_per_stage >= 1, num_classes >= 1, resolution >= 4")
        self.num_classes = num_classes
        self.resolution = resolution
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.in_channels = in_channels
        self._fixed: list[BlockSpec] = []  # stem, reductions, head (the same for every arch)
        self._op_blocks: dict[tuple[int, str], BlockSpec] = {}
        self._build_tables()

    def _build_tables(self) -> None:
        h = self.resolution
        self._fixed.append(_stem_block(self.in_channels, self.channels[0], h))
        for s, c in enumerate(self.channels):
            if s > 0:
                self._fixed.append(_reduction_block(self.channels[s - 1], c, h))
                h = (h - 1) // 2 + 1
            for op in OPS[1:]:
                self._op_blocks[(s, op)] = _op_block(op, c, h)
        self._fixed.append(_head_block(self.channels[-1], h, self.num_classes))

    # --- architectures ------------------------------------------------------------
    def sample(self, rng: random.Random | None = None) -> NB201Arch:
        rng = rng or random.Random()
        return NB201Arch(tuple(rng.choice(OPS) for _ in EDGES))

    def smallest(self) -> NB201Arch:
        """Every edge ``none``: no cell compute (ties at zero cell FLOPs go to ``none``)."""
        return NB201Arch(("none",) * len(EDGES))

    def largest(self) -> NB201Arch:
        """Every edge a 3x3 convolution: the most FLOPs and parameters."""
        return NB201Arch(("nor_conv_3x3",) * len(EDGES))

    def suggest(self, trial: Any) -> NB201Arch:
        """Six categorical parameters ``edge_<to>_<from>`` over the five op names."""
        return NB201Arch(
            tuple(trial.suggest_categorical(f"edge_{t}_{f}", list(OPS)) for t, f in EDGES)
        )

    def arch_from_json(self, data: Any) -> NB201Arch:
        """Parse ``{"ops": [...]}`` (dict or JSON text), a cell string ``|op~0|+|...|``, or
        an NB201 index (int or decimal string); raises ``ValueError`` naming the problem."""
        if isinstance(data, NB201Arch):
            return data
        if isinstance(data, str):
            text = data.strip()
            if text.startswith("|"):
                return NB201Arch.from_str(text)
            if text.isdigit():
                return NB201Arch.from_index(int(text))
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(
                    f"not an nb201 arch (JSON, cell string or index): {data[:80]!r}"
                ) from None
        if isinstance(data, int | np.integer) and not isinstance(data, bool):
            return NB201Arch.from_index(int(data))
        return NB201Arch.from_json(data)

    def validate(self, arch: Any) -> None:
        if not isinstance(arch, NB201Arch):
            raise ValueError(f"expected an NB201Arch, got {type(arch).__name__}")

    def enumerate(self) -> list[NB201Arch]:
        """All 15,625 cells; position ``i`` holds NAS-Bench-201 index ``i``."""
        return [NB201Arch.from_index(i) for i in range(NUM_ARCHS)]

    # --- descriptions ---------------------------------------------------------------
    def encode(self, arch: NB201Arch) -> np.ndarray:
        """One-hot op per edge: 6 x 5 = 30 entries."""
        vec = np.zeros(len(EDGES) * len(OPS), dtype=np.float32)
        for e, code in enumerate(arch.codes):
            vec[e * len(OPS) + code] = 1.0
        return vec

    def feature_names(self) -> list[str]:
        return [f"edge_{t}_{f}={op}" for t, f in EDGES for op in OPS]

    def input_shape(self, arch: NB201Arch) -> tuple[int, int, int]:
        return (self.in_channels, self.resolution, self.resolution)

    def blocks(self, arch: NB201Arch) -> list[BlockSpec]:
        """Stem; per stage ``N`` cells, each listed as its non-``none`` edge ops (kinds
        ``relu_conv_bn``, ``avg_pool``, ``skip``) at the stage's shape; a ``res_reduction``
        block between stages; the head. The node additions are not blocks."""
        stem, red1, red2, head = self._fixed
        out = [stem]
        for s in range(len(self.channels)):
            if s > 0:
                out.append(red1 if s == 1 else red2)
            cell = [self._op_blocks[(s, op)] for op in arch.ops if op != "none"]
            out.extend(cell * self.cells_per_stage)
        out.append(head)
        return out

    def cuts(self, arch: NB201Arch) -> list[Cut]:
        """Cell boundaries only: inside a cell several nodes are live at once. The input,
        after the stem, after every cell and reduction block (the head follows the last
        cell), and the output."""
        ops = sum(op != "none" for op in arch.ops)
        h = self.resolution
        index = 1
        out = [Cut(0, (self.input_shape(arch),), "input"), Cut(1, ((self.channels[0], h, h),), "after stem")]
        for s, c in enumerate(self.channels):
            if s > 0:
                h = (h - 1) // 2 + 1
                index += 1
                out.append(Cut(index, ((c, h, h),), f"after reduction {s}"))
            for i in range(self.cells_per_stage):
                index += ops
                out.append(Cut(index, ((c, h, h),), f"after stage {s + 1} cell {i + 1}"))
        out.append(Cut(index + 1, (), "output (edge only)"))
        return out

    def split_modules(self, module: nn.Module, arch: NB201Arch) -> list[nn.Module]:
        """Stem, every cell and reduction block, head: one segment between neighbouring cuts."""
        if not isinstance(module, NB201Network):
            raise ValueError(f"split_modules needs the NB201Network of arch {arch}")
        return [module.stem, *module.layers, module.head]

    def flops(self, arch: NB201Arch) -> int:
        """MACs at batch 1 (convolutions and the classifier), equal to summing :meth:`blocks`."""
        return self._cost(arch, "flops")

    def params(self, arch: NB201Arch) -> int:
        return self._cost(arch, "params")

    def _cost(self, arch: NB201Arch, field: str) -> int:
        fixed = sum(getattr(b, field) for b in self._fixed)
        cells = sum(
            getattr(self._op_blocks[(s, op)], field)
            for s in range(len(self.channels))
            for op in arch.ops
            if op != "none"
        )
        return fixed + self.cells_per_stage * cells

    # --- modules ----------------------------------------------------------------------
    def build_static(self, arch: NB201Arch) -> NB201Network:
        self.validate(arch)
        model = NB201Network(
            arch, self.channels, self.cells_per_stage, self.num_classes, self.in_channels
        )
        init_weights(model)
        return model.eval()

    def build_block(self, block: BlockSpec) -> nn.Module:
        cin = block.in_shape[0]
        if block.kind == "stem":
            module: nn.Module = Stem(cin, block.out_channels)
        elif block.kind == "relu_conv_bn":
            module = ReLUConvBN(cin, block.out_channels, block.kernel, block.stride)
        elif block.kind == "avg_pool":
            module = AvgPool3x3()
        elif block.kind == "skip":
            module = nn.Identity()
        elif block.kind == "res_reduction":
            module = ResidualReduction(cin, block.out_channels)
        elif block.kind == "head":
            module = Head(cin, block.out_channels)
        else:
            raise ValueError(f"nb201 has no block kind {block.kind!r}")
        init_weights(module)
        return module.eval()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "resolution": self.resolution,
            "channels": list(self.channels),
            "cells_per_stage": self.cells_per_stage,
        }


def _stem_block(cin: int, cout: int, h: int) -> BlockSpec:
    return BlockSpec(
        kind="stem",
        in_shape=(cin, h, h),
        out_channels=cout,
        kernel=3,
        flops=cout * cin * 9 * h * h,
        params=cout * cin * 9 + 2 * cout,
    )


def _op_block(op: str, c: int, h: int) -> BlockSpec:
    if op in _CONV_KERNEL:
        k = _CONV_KERNEL[op]
        return BlockSpec(
            kind="relu_conv_bn",
            in_shape=(c, h, h),
            out_channels=c,
            kernel=k,
            activation="relu",
            flops=c * c * k * k * h * h,
            params=c * c * k * k + 2 * c,
        )
    if op == "avg_pool_3x3":
        return BlockSpec(kind="avg_pool", in_shape=(c, h, h), out_channels=c, kernel=3)
    if op == "skip_connect":
        return BlockSpec(kind="skip", in_shape=(c, h, h), out_channels=c)
    raise ValueError(f"nb201 op {op!r} has no block")


def _reduction_block(cin: int, cout: int, h: int) -> BlockSpec:
    oh = (h - 1) // 2 + 1
    flops = cout * cin * 9 * oh * oh + cout * cout * 9 * oh * oh + cout * cin * oh * oh
    params = cout * cin * 9 + 2 * cout + cout * cout * 9 + 2 * cout + cout * cin
    return BlockSpec(
        kind="res_reduction",
        in_shape=(cin, h, h),
        out_channels=cout,
        stride=2,
        kernel=3,
        activation="relu",
        residual=True,
        flops=flops,
        params=params,
    )


def _head_block(c: int, h: int, num_classes: int) -> BlockSpec:
    return BlockSpec(
        kind="head",
        in_shape=(c, h, h),
        out_channels=num_classes,
        activation="relu",
        flops=c * num_classes,
        params=2 * c + c * num_classes + num_classes,
    )
