"""The ``nebula`` search space: sub-models made of modules of a modular cloud model.

Nebula (Zhuang et al., ICPP 2024; arXiv 2311.11083 "ECLM") splits every block of a
cloud model into interchangeable modules with matching input and output shapes, so any
non-empty choice of modules per layer is a runnable sub-model. An architecture here is
that choice (:class:`ModularArch`); costs are known per module without building
anything, which is what the device-side knapsack needs.

Example::

    space = get_space("nebula", preset="mnist1d")
    cloud = space.build_supernet()                  # every module, with the selector
    arch = space.sample(random.Random(0))
    sub = cloud.extract(arch)                       # a device's sub-model, same names
    space.flops(arch), space.params(arch)
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces._base import BlockSpec, Cut, SearchSpace
from search_spaces._registry import register_space
from search_spaces.modular.arch import ModularArch
from search_spaces.modular.config import PRESETS
from search_spaces.modular.network import Head, ModularNet, Selector, ShrunkModule, Stem


@register_space("nebula")
class NebulaSpace(SearchSpace):
    """Layers of ``modules`` shrunk modules plus a skip module; presets ``mnist1d``, ``digits``, ``tiny``."""

    name = "nebula"

    def __init__(self, preset: str = "mnist1d", **overrides: Any) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown nebula preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.preset = preset
        self.config = dataclasses.replace(PRESETS[preset], **overrides)

    # --- architectures ------------------------------------------------------------
    def _all(self) -> tuple[int, ...]:
        return tuple(range(self.config.modules + 1))

    def sample(self, rng: random.Random | None = None) -> ModularArch:
        rng = rng or random.Random()
        layers = []
        for _ in range(self.config.layers):
            chosen = [k for k in self._all() if rng.random() < 0.5]
            layers.append(tuple(chosen) or (rng.choice(self._all()),))
        return ModularArch(tuple(layers))

    def smallest(self) -> ModularArch:
        """Only the skip module in every layer: stem, selector and head."""
        return ModularArch(((self.config.skip,),) * self.config.layers)

    def largest(self) -> ModularArch:
        return ModularArch((self._all(),) * self.config.layers)

    def suggest(self, trial: Any) -> ModularArch:
        """One boolean per (layer, module); a layer with none chosen keeps the skip module."""
        layers = []
        for i in range(self.config.layers):
            chosen = [k for k in self._all() if trial.suggest_categorical(f"l{i}_m{k}", [False, True])]
            layers.append(tuple(chosen) or (self.config.skip,))
        return ModularArch(tuple(layers))

    def arch_from_json(self, data: Any) -> ModularArch:
        arch = data if isinstance(data, ModularArch) else ModularArch.from_json(data)
        self.validate(arch)
        return arch

    def validate(self, arch: Any) -> None:
        if not isinstance(arch, ModularArch):
            raise ValueError(f"expected a ModularArch, got {type(arch).__name__}")
        if len(arch.layers) != self.config.layers:
            raise ValueError(f"layers: expected {self.config.layers}, got {len(arch.layers)}")
        for i, layer in enumerate(arch.layers):
            if layer[-1] > self.config.skip:
                raise ValueError(f"layers[{i}]: module {layer[-1]} > {self.config.skip} (the skip module)")

    # --- descriptions ---------------------------------------------------------------
    def encode(self, arch: ModularArch) -> np.ndarray:
        """A 0/1 mask over (layer, module)."""
        vec = np.zeros((self.config.layers, self.config.modules + 1), dtype=np.float32)
        for i, k in arch.modules():
            vec[i, k] = 1.0
        return vec.ravel()

    def feature_names(self) -> list[str]:
        return [f"l{i}_m{k}" for i in range(self.config.layers) for k in self._all()]

    def input_shape(self, arch: Any = None) -> tuple[int, int, int]:
        c = self.config
        return (c.in_channels, c.height, c.width)

    def fixed_blocks(self) -> list[BlockSpec]:
        """Blocks every sub-model holds: stem, selector (with every layer's gate), head."""
        c = self.config
        kh, kw = c.kernel_size
        hw = c.height * c.width
        ph, pw = c.pooled
        flat = c.in_channels * ph * pw
        gates = c.layers * (c.embed_dim * (c.modules + 1))
        stem = BlockSpec("stem", self.input_shape(), c.channels, kernel=c.kernel, activation="relu",
                         flops=c.channels * c.in_channels * kh * kw * hw,
                         params=c.channels * c.in_channels * kh * kw + 2 * c.channels)
        selector = BlockSpec("selector", self.input_shape(), c.layers * (c.modules + 1),
                             mid_channels=c.embed_dim, flops=flat * c.embed_dim + gates,
                             params=(flat + 1) * c.embed_dim + 2 * (gates + c.layers * (c.modules + 1)))
        head = BlockSpec("head", (c.channels, c.height, c.width), c.num_classes,
                         flops=c.channels * c.num_classes, params=(c.channels + 1) * c.num_classes)
        return [stem, selector, head]

    def module_block(self) -> BlockSpec:
        """Block of one shrunk module: all of them have the same shapes and cost, so they
        share one block key (a block-level predictor measures it once)."""
        c = self.config
        kh, kw = c.kernel_size
        conv = c.module_channels * c.channels * kh * kw
        return BlockSpec("module", (c.channels, c.height, c.width), c.channels, kernel=c.kernel,
                         mid_channels=c.module_channels, activation="relu", residual=True,
                         flops=2 * conv * c.height * c.width,
                         params=2 * conv + 2 * c.module_channels + 2 * c.channels)

    def blocks(self, arch: ModularArch) -> list[BlockSpec]:
        """Stem, selector, every shrunk module held (skip modules cost nothing), head.

        The selector is held whole but computes only the gates of layers that hold a shrunk
        module (a skip-only layer needs no routing); with none, it is not run at all.
        """
        c = self.config
        stem, selector, head = self.fixed_blocks()
        mods = [self.module_block() for _, k in arch.modules() if k != c.skip]
        routed = sum(1 for layer in arch.layers if any(k != c.skip for k in layer))
        gate = c.embed_dim * (c.modules + 1)
        if not mods:  # nothing to route: the selector is held but never run
            selector = dataclasses.replace(selector, flops=0)
        else:
            selector = dataclasses.replace(selector, out_channels=routed * (c.modules + 1),
                                           flops=selector.flops - (c.layers - routed) * gate)
        return [stem, selector, *mods, head]

    def cuts(self, arch: ModularArch) -> list[Cut]:
        """The input; after the stem and the selector (the stream and every layer's gates
        cross); after each layer that holds a shrunk module; the output. Inside a layer the
        modules run side by side on the same stream, so there is no cut between them."""
        c = self.config
        stream, gates = (c.channels, c.height, c.width), (c.layers * (c.modules + 1),)
        out = [Cut(0, (self.input_shape(),), "input"), Cut(2, (stream, gates), "after stem and selector")]
        index = 2
        for i, layer in enumerate(arch.layers):
            held = sum(1 for k in layer if k != c.skip)
            if held:
                index += held
                out.append(Cut(index, (stream, gates), f"after layer {i + 1}"))
        out.append(Cut(index + 1, (), "output (edge only)"))
        return out

    # --- modules --------------------------------------------------------------------
    def build_static(self, arch: ModularArch) -> ModularNet:
        """The sub-model, running every module it holds whatever the routing (as the space
        counts its cost; no data-dependent branches, so it traces and exports)."""
        self.validate(arch)
        net = ModularNet(self.config, arch)
        net.run_unrouted = True
        return net

    def build_supernet(self) -> ModularNet:
        return ModularNet(self.config)

    def build_block(self, block: BlockSpec) -> nn.Module:
        if block.kind == "stem":
            return Stem(self.config)
        if block.kind == "module":
            return ShrunkModule(self.config)
        if block.kind == "selector":
            return _SelectorLogits(Selector(self.config), block.out_channels // (self.config.modules + 1))
        if block.kind == "head":
            return Head(self.config)
        raise ValueError(f"nebula has no block kind {block.kind!r}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, **dataclasses.asdict(self.config)}


class _SelectorLogits(nn.Module):
    """The selector as one block: the gate logits of its first ``layers`` layers, concatenated."""

    def __init__(self, selector: Selector, layers: int) -> None:
        super().__init__()
        self.selector, self.layers = selector, list(range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.selector.logits(x, layers=self.layers), dim=1)
