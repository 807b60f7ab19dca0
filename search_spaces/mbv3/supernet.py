"""The MobileNetV3 weight-sharing supernet (the cloud model).

A sub-network is chosen per call: ``supernet(x, arch)``, or for a scope with
``with supernet.activate(arch): supernet(x)`` (restored on exit, exceptions included).
``extract`` copies a sub-network out as a plain module; ``absorb`` and ``absorb_many``
write sub-networks' weights back, averaging the slices they cover.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._supernet import SlicedSupernet
from search_spaces.mbv3.arch import MBV3Arch
from search_spaces.mbv3.config import MBV3Config
from search_spaces.mbv3.elastic import ElasticMBConv, center_or_prefix, init_weights
from search_spaces.mbv3.static import Head, StaticMobileNetV3, build_stem


class MobileNetV3Supernet(SlicedSupernet):
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

    # --- running a sub-network ---------------------------------------------------
    def forward(self, x: torch.Tensor, arch: MBV3Arch | None = None) -> torch.Tensor:
        arch = self.chosen(arch)
        x = self.first_block(self.stem(x))
        for stage, blocks in zip(self.stages, arch.stage_blocks()):
            for block, (kernel, expand) in zip(stage, blocks):
                x = block(x, kernel, expand)
        return self.head(x)

    # --- weights in and out (SlicedSupernet) ----------------------------------------
    def static_model(self, arch: MBV3Arch) -> StaticMobileNetV3:
        return StaticMobileNetV3(self.config, arch)

    def slice_of(self, big: torch.Size, small: torch.Size) -> tuple[slice, ...]:
        return center_or_prefix(big, small)  # kernels by their centre, channels by prefix

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Sort every block's expanded channels by importance (before shrinking the expand ratio)."""
        for stage in self.stages:
            for block in stage:
                block.sort_channels()
