"""The MobileNetV3 weight-sharing supernet (the cloud model).

A sub-network is chosen per call: ``supernet(x, arch)``, or for a scope with
``with supernet.activate(arch): supernet(x)`` (restored on exit, exceptions included).
``extract`` copies a sub-network out as a plain module; ``absorb`` and ``absorb_many``
write sub-networks' weights back, averaging the slices they cover.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from search_spaces.mbv3.arch import MBV3Arch
from search_spaces.mbv3.config import MBV3Config
from search_spaces.mbv3.elastic import ElasticMBConv, center_or_prefix, init_weights
from search_spaces.mbv3.static import Head, StaticMobileNetV3, build_stem


class MobileNetV3Supernet(nn.Module):
    """OFA's MobileNetV3 supernet: elastic depth, kernel and expand ratio per block."""

    def __init__(self, cfg: MBV3Config) -> None:
        super().__init__()
        self.config = cfg
        self.stem, self.first_block = build_stem(cfg)
        cin = cfg.first_block_width
        stages = []
        for s, cout in enumerate(cfg.stage_widths):
            blocks = []
            for j in range(max(cfg.depths)):
                blocks.append(
                    ElasticMBConv(
                        cin,
                        cout,
                        cfg.stage_strides[s] if j == 0 else 1,
                        max(cfg.kernels),
                        max(cfg.expands),
                        cfg.stage_activations[s],
                        cfg.stage_se[s],
                    )
                )
                cin = cout
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.head = Head(cin, cfg)
        init_weights(self)
        self._active: MBV3Arch | None = None

    # --- running a sub-network ---------------------------------------------------
    def forward(self, x: torch.Tensor, arch: MBV3Arch | None = None) -> torch.Tensor:
        arch = arch if arch is not None else self._active
        if arch is None:
            raise RuntimeError(
                "no sub-network chosen: call supernet(x, arch) or use `with supernet.activate(arch):`"
            )
        x = self.first_block(self.stem(x))
        for stage, blocks in zip(self.stages, arch.stage_blocks()):
            for block, (kernel, expand) in zip(stage, blocks):
                x = block(x, kernel, expand)
        return self.head(x)

    @contextmanager
    def activate(self, arch: MBV3Arch) -> Iterator[MobileNetV3Supernet]:
        """Scope in which ``supernet(x)`` runs ``arch``; the previous choice is restored after."""
        previous, self._active = self._active, arch
        try:
            yield self
        finally:
            self._active = previous

    # --- weights in and out --------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: MBV3Arch) -> StaticMobileNetV3:
        """A plain ``nn.Module`` of ``arch`` holding copies of the weights it uses."""
        static = StaticMobileNetV3(self.config, arch)
        source = self.state_dict()
        for name, tensor in static.state_dict().items():
            big = source[name]
            tensor.copy_(big[center_or_prefix(big.shape, tensor.shape)])
        device = next(self.parameters()).device
        return static.to(device).train(self.training)

    @torch.no_grad()
    def absorb(self, arch: MBV3Arch, module: nn.Module, weight: float = 1.0) -> None:
        """Blend a sub-network's weights into the slices it covers.

        ``new = (1 - weight) * old + weight * sub`` on every element ``module`` covers (BN
        running statistics included); elements it does not cover are untouched.
        """
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"absorb weight must be in (0, 1], got {weight}")
        self.absorb_many([(arch, module, weight)], keep=1.0 - weight)

    @torch.no_grad()
    def absorb_many(
        self, updates: Sequence[tuple[MBV3Arch, nn.Module, float]], keep: float = 0.0
    ) -> None:
        """Weighted average of several sub-networks, element by element (block-wise aggregation).

        Each element becomes ``(keep * old + sum_i w_i * sub_i) / (keep + sum_i w_i)`` over the
        updates that cover it; elements no update covers are untouched. ``keep`` weighs the
        cloud model's current value (0 replaces covered elements by the updates' average).
        """
        if keep < 0 or any(w < 0 for _, _, w in updates):
            raise ValueError("absorb weights must be non-negative")
        target = self.state_dict()
        totals: dict[str, torch.Tensor] = {}
        weights: dict[str, torch.Tensor] = {}
        for arch, module, w in updates:
            state = self._checked_state(arch, module)
            for name, tensor in state.items():
                if not target[name].is_floating_point():
                    continue  # num_batches_tracked: counters are not averaged
                big = target[name]
                if name not in totals:
                    totals[name] = torch.zeros_like(big, dtype=torch.float32)
                    weights[name] = torch.zeros_like(big, dtype=torch.float32)
                where = center_or_prefix(big.shape, tensor.shape)
                totals[name][where] += w * tensor.detach().float().to(big.device)
                weights[name][where] += w
        for name, total in totals.items():
            big, w = target[name], weights[name]
            covered = w > 0
            blended = (keep * big.float() + total) / (keep + w).clamp_min(1e-12)
            big.copy_(torch.where(covered, blended, big.float()).to(big.dtype))

    def _checked_state(self, arch: MBV3Arch, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module``'s state, after checking it is exactly the sub-network ``arch``."""
        state = module.state_dict()
        expected = {k: v.shape for k, v in StaticMobileNetV3(self.config, arch).state_dict().items()}
        got = {k: v.shape for k, v in state.items()}
        if expected != got:
            missing = sorted(set(expected) - set(got))[:3]
            unknown = sorted(set(got) - set(expected))[:3]
            wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])[:3]
            raise ValueError(
                f"module does not match arch {arch}: missing {missing}, unexpected {unknown}, "
                f"wrong shapes {wrong}"
            )
        for name, tensor in state.items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ValueError(f"module for arch {arch} has non-finite values in {name}")
        return state

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Sort every block's expanded channels by importance (before shrinking the expand ratio)."""
        for stage in self.stages:
            for block in stage:
                block.sort_channels()
