"""Per-module costs, computed once in the cloud, and per-device budgets.

Three dimensions, as in Nebula: **memory** (bytes a device needs to train: weights,
gradients and SGD momentum, plus the activations saved for the backward pass at the
training batch size), **compute** (multiply-accumulates per training sample: forward
plus about twice that backward) and **bandwidth** (bytes each way: the weights go down
and, for trained parts, come back up). A sub-model's cost is the fixed part (stem,
selector, head) plus the sum of its modules' costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search_spaces.modular import ModularArch, ModularConfig

FLOAT_BYTES = 4
DIMENSIONS = ("memory", "compute", "bandwidth")


@dataclass(frozen=True)
class Cost:
    """A point in (memory bytes, compute MACs per sample, bandwidth bytes)."""

    memory: float
    compute: float
    bandwidth: float

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.memory, self.compute, self.bandwidth)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.memory + other.memory, self.compute + other.compute, self.bandwidth + other.bandwidth)

    def fits(self, budget: Cost) -> bool:
        return all(c <= b for c, b in zip(self.as_tuple(), budget.as_tuple()))

    def describe(self) -> str:
        return (f"memory {self.memory / 1e6:.3f} MB, compute {self.compute / 1e6:.3f} MMAC/sample, "
                f"bandwidth {self.bandwidth / 1e6:.3f} MB")


def _conv(cfg: ModularConfig, cin: int, cout: int) -> int:
    kh, kw = cfg.kernel_size
    return cin * cout * kh * kw


@dataclass(frozen=True)
class ModularCosts:
    """Costs of modules and sub-models of one modular network at one training batch size.

    ``width_ratio`` < 1 prices HeteroFL's width-reduced copies of the same network.
    """

    config: ModularConfig
    batch_size: int = 32

    def _widths(self, ratio: float) -> tuple[int, int]:
        c, h = self.config.channels, self.config.module_channels
        return max(1, round(c * ratio)), max(1, round(h * ratio))

    def _price(self, params: int, trained: int, macs: int, saved: int) -> Cost:
        memory = FLOAT_BYTES * (params + 2 * trained + self.batch_size * saved)
        return Cost(memory, 3 * macs, FLOAT_BYTES * (params + trained))

    def module(self, ratio: float = 1.0) -> Cost:
        """One shrunk module (all modules of a network cost the same)."""
        cfg = self.config
        c, h = self._widths(ratio)
        hw = cfg.height * cfg.width
        params = 2 * _conv(cfg, c, h) + 2 * h + 2 * c
        saved = hw * (3 * h + 2 * c)  # conv1/bn1/relu outputs, conv2/bn2 outputs
        return self._price(params, params, 2 * _conv(cfg, c, h) * hw, saved)

    def fixed(self, ratio: float = 1.0) -> Cost:
        """Stem, selector (downloaded, never trained on devices) and head."""
        cfg = self.config
        c, _ = self._widths(ratio)
        hw = cfg.height * cfg.width
        ph, pw = cfg.pooled
        flat = cfg.in_channels * ph * pw
        gates = cfg.layers * cfg.embed_dim * (cfg.modules + 1)
        selector = (flat + 1) * cfg.embed_dim + 2 * (gates + cfg.layers * (cfg.modules + 1))
        stem = _conv(cfg, cfg.in_channels, c) + 2 * c
        head = (c + 1) * cfg.num_classes
        trained = stem + head
        macs = _conv(cfg, cfg.in_channels, c) * hw + c * cfg.num_classes + flat * cfg.embed_dim + gates
        saved = hw * (cfg.in_channels + 3 * c) + c
        return self._price(stem + head + selector, trained, macs, saved)

    def of_arch(self, arch: ModularArch) -> Cost:
        total = self.fixed()
        for _, k in arch.modules():
            if k != self.config.skip:
                total = total + self.module()
        return total

    def full(self, ratio: float = 1.0) -> Cost:
        """The whole network (every module), or HeteroFL's copy at ``ratio`` of the width."""
        total = self.fixed(ratio)
        for _ in range(self.config.layers * self.config.modules):
            total = total + self.module(ratio)
        return total


def sample_budgets(full: Cost, devices: int, low: float, high: float, seed: int) -> list[Cost]:
    """Per-device budgets, log-uniform between ``low`` and ``high`` times the full model's cost,
    drawn independently per dimension (a phone may have memory but little bandwidth)."""
    if not 0 < low <= high:
        raise ValueError(f"budget fractions need 0 < low <= high, got {low} and {high}")
    rng = np.random.default_rng([seed, 7])
    frac = np.exp(rng.uniform(np.log(low), np.log(high), size=(devices, 3)))
    return [Cost(*(f * np.array(full.as_tuple())).tolist()) for f in frac]
