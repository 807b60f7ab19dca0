"""The ``mbv3`` search space: OFA's MobileNetV3 space with a CPU-sized preset."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from torch import nn

from search_spaces._base import BlockSpec, SearchSpace
from search_spaces._registry import register_space
from search_spaces.mbv3.arch import MBV3Arch
from search_spaces.mbv3.config import PRESETS, MBV3Config
from search_spaces.mbv3.elastic import init_weights
from search_spaces.mbv3.static import (
    ConvBNAct,
    MBConv,
    StaticMobileNetV3,
    mid_channels,
    se_channels,
)


@register_space("mbv3")
class MobileNetV3Space(SearchSpace):
    """OFA's MobileNetV3 space: per-stage depth, per-block kernel and expand, resolution.

    ``preset`` is ``"ofa"`` (ImageNet-sized, the default) or ``"small"`` (32x32 inputs on a
    CPU); any field of :class:`MBV3Config` can be overridden by keyword, e.g.
    ``get_space("mbv3", preset="small", num_classes=100)``.

    Example::

        space = get_space("mbv3", preset="small")
        arch = space.sample(random.Random(0))
        supernet = space.build_supernet()
        logits = supernet(images, arch)
    """

    name = "mbv3"

    def __init__(self, preset: str = "ofa", **overrides: Any) -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown mbv3 preset {preset!r}; use one of {sorted(PRESETS)}")
        unknown = set(overrides) - set(MBV3Config.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown mbv3 setting(s) {sorted(unknown)}")
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        self.preset = preset
        self.config: MBV3Config = replace(PRESETS[preset], **overrides)

    @property
    def num_stages(self) -> int:
        return len(self.config.stage_channels)

    # --- architectures ------------------------------------------------------------
    def sample(
        self,
        rng: random.Random | None = None,
        *,
        depths: tuple[int, ...] | None = None,
        kernels: tuple[int, ...] | None = None,
        expands: tuple[int, ...] | None = None,
        resolutions: tuple[int, ...] | None = None,
    ) -> MBV3Arch:
        """A uniform sample; the keyword choices restrict it (progressive shrinking phases)."""
        rng = rng or random.Random()
        depths, kernels, expands, resolutions = self._choices(
            {"depths": depths, "kernels": kernels, "expands": expands, "resolutions": resolutions}
        )
        ds = tuple(rng.choice(depths) for _ in range(self.num_stages))
        n = sum(ds)
        return MBV3Arch(
            depths=ds,
            kernels=tuple(rng.choice(kernels) for _ in range(n)),
            expands=tuple(rng.choice(expands) for _ in range(n)),
            resolution=rng.choice(resolutions),
        )

    def _subset(self, name: str, values: tuple[int, ...] | None) -> tuple[int, ...]:
        allowed = getattr(self.config, name)
        if values is None:
            return allowed
        if not values or not set(values) <= set(allowed):
            raise ValueError(f"{name} {list(values)} must be a non-empty subset of {list(allowed)}")
        return tuple(sorted(values))

    def _uniform(self, depth: int, kernel: int, expand: int, resolution: int) -> MBV3Arch:
        n = depth * self.num_stages
        return MBV3Arch((depth,) * self.num_stages, (kernel,) * n, (expand,) * n, resolution)

    def smallest(self, **choices: tuple[int, ...] | None) -> MBV3Arch:
        """The least compute; ``choices`` (``depths=``, ``kernels=``...) restrict it to a phase."""
        d, k, e, r = self._choices(choices)
        return self._uniform(min(d), min(k), min(e), min(r))

    def largest(self, **choices: tuple[int, ...] | None) -> MBV3Arch:
        """The most compute; ``choices`` restrict it as for :meth:`smallest`."""
        d, k, e, r = self._choices(choices)
        return self._uniform(max(d), max(k), max(e), max(r))

    def _choices(self, choices: dict[str, tuple[int, ...] | None]) -> list[tuple[int, ...]]:
        names = ("depths", "kernels", "expands", "resolutions")
        unknown = set(choices) - set(names)
        if unknown:
            raise ValueError(f"unknown mbv3 choice(s) {sorted(unknown)}; use {', '.join(names)}")
        return [self._subset(n, choices.get(n)) for n in names]

    def suggest(self, trial: Any) -> MBV3Arch:
        """Every slot is suggested in every trial (a static space suits NSGA-II and TPE);
        the kernel and expand of blocks beyond a stage's depth are ignored."""
        cfg = self.config
        depths, kernels, expands = [], [], []
        for s in range(self.num_stages):
            d = trial.suggest_categorical(f"depth_{s}", list(cfg.depths))
            depths.append(d)
            for j in range(max(cfg.depths)):
                k = trial.suggest_categorical(f"kernel_{s}_{j}", list(cfg.kernels))
                e = trial.suggest_categorical(f"expand_{s}_{j}", list(cfg.expands))
                if j < d:
                    kernels.append(k)
                    expands.append(e)
        resolution = trial.suggest_categorical("resolution", list(cfg.resolutions))
        return MBV3Arch(tuple(depths), tuple(kernels), tuple(expands), resolution)

    @functools.cached_property
    def _param_names(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Per stage: its depth parameter, then the kernel and expand parameters of each slot."""
        max_d = max(self.config.depths)
        return [(f"depth_{s}", [(f"kernel_{s}_{j}", f"expand_{s}_{j}") for j in range(max_d)])
                for s in range(self.num_stages)]

    def arch_from_params(self, params: Mapping[str, Any]) -> MBV3Arch:
        """The arch :meth:`suggest` gives a trial whose parameters are ``params`` (every one
        present, else ``KeyError``), without a trial: samplers resolve thousands of
        parameter sets per search, and a stand-in trial costs several times more."""
        depths, kernels, expands = [], [], []
        for depth_name, slots in self._param_names:
            d = params[depth_name]
            depths.append(d)
            for kernel_name, expand_name in slots[:d]:
                kernels.append(params[kernel_name])
                expands.append(params[expand_name])
        return MBV3Arch(tuple(depths), tuple(kernels), tuple(expands), params["resolution"])

    def arch_from_json(self, data: Any) -> MBV3Arch:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ValueError(f"arch is not valid JSON: {exc}") from None
        arch = MBV3Arch.from_json(data)
        self.validate(arch)
        return arch

    def validate(self, arch: Any) -> None:
        cfg = self.config
        if not isinstance(arch, MBV3Arch):
            raise ValueError(f"expected an MBV3Arch, got {type(arch).__name__}")
        if len(arch.depths) != self.num_stages:
            raise ValueError(f"depths needs {self.num_stages} entries, got {len(arch.depths)}")
        for name, allowed in (
            ("depths", cfg.depths),
            ("kernels", cfg.kernels),
            ("expands", cfg.expands),
        ):
            bad = [v for v in getattr(arch, name) if v not in allowed]
            if bad:
                raise ValueError(f"{name} has {bad[0]}, not one of {list(allowed)}")
        if arch.resolution not in cfg.resolutions:
            raise ValueError(f"resolution {arch.resolution} is not one of {list(cfg.resolutions)}")

    # --- descriptions ---------------------------------------------------------------
    def encode(self, arch: MBV3Arch) -> np.ndarray:
        """One-hot kernel and expand per block slot (zeros for skipped blocks), then resolution."""
        cfg = self.config
        max_d = max(cfg.depths)
        nk, ne = len(cfg.kernels), len(cfg.expands)
        slot = nk + ne
        kernel_at = {k: i for i, k in enumerate(cfg.kernels)}
        expand_at = {e: nk + i for i, e in enumerate(cfg.expands)}
        hot = []
        for s, blocks in enumerate(arch.stage_blocks()):
            for j, (k, e) in enumerate(blocks):
                base = (s * max_d + j) * slot
                hot += (base + kernel_at[k], base + expand_at[e])
        hot.append(self.num_stages * max_d * slot + cfg.resolutions.index(arch.resolution))
        vec = np.zeros(self.num_stages * max_d * slot + len(cfg.resolutions), dtype=np.float32)
        vec[hot] = 1.0
        return vec

    def feature_names(self) -> list[str]:
        cfg = self.config
        names = []
        for s in range(self.num_stages):
            for j in range(max(cfg.depths)):
                names += [f"s{s}b{j}_k{k}" for k in cfg.kernels]
                names += [f"s{s}b{j}_e{e}" for e in cfg.expands]
        return names + [f"res{r}" for r in cfg.resolutions]

    def input_shape(self, arch: MBV3Arch) -> tuple[int, int, int]:
        return (self.config.in_channels, arch.resolution, arch.resolution)

    def blocks(self, arch: MBV3Arch) -> list[BlockSpec]:
        """Stem, first block, every active MBConv, final expand, head: with FLOPs and params.

        Remembered per arch (a search asks for the same arch's blocks to predict its
        latency, FLOPs and parameters, and again for every device)."""
        memo = self.__dict__.setdefault("_blocks_memo", {})
        hit = memo.get(arch)
        if hit is None:
            if len(memo) >= 100_000:
                memo.clear()
            hit = memo[arch] = tuple(self._blocks(arch))
        return list(hit)

    def _blocks(self, arch: MBV3Arch) -> list[BlockSpec]:
        cfg = self.config
        widths = cfg.stage_widths  # a property that recomputes every width: read it once
        h = arch.resolution
        out = [_conv_block(cfg.in_channels, cfg.stem_width, 3, cfg.stem_stride, h, "hswish")]
        h = out[-1].out_shape[1]
        cin = cfg.stem_width
        out.append(_mbconv_block(cin, cfg.first_block_width, 3, 1, cin, h, "relu", False, 1))
        cin = cfg.first_block_width
        for s, blocks in enumerate(arch.stage_blocks()):
            for j, (k, e) in enumerate(blocks):
                stride = cfg.stage_strides[s] if j == 0 else 1
                mid = mid_channels(cin, e)
                cout = widths[s]
                out.append(
                    _mbconv_block(
                        cin, cout, k, stride, mid, h, cfg.stage_activations[s], cfg.stage_se[s], e
                    )
                )
                h = out[-1].out_shape[1]
                cin = cout
        out.append(_conv_block(cin, cfg.final_expand_width, 1, 1, h, "hswish"))
        fe, fm, nc = cfg.final_expand_width, cfg.feature_mix_width, cfg.num_classes
        out.append(
            BlockSpec(
                kind="head",
                in_shape=(fe, h, h),
                out_channels=nc,
                mid_channels=fm,
                activation="hswish",
                flops=fe * fm + fm * nc,
                params=fe * fm + fm * nc + nc,
            )
        )
        return out

    # --- modules ----------------------------------------------------------------------
    def build_static(self, arch: MBV3Arch) -> StaticMobileNetV3:
        self.validate(arch)
        model = StaticMobileNetV3(self.config, arch)
        init_weights(model)
        return model.eval()

    def build_block(self, block: BlockSpec) -> nn.Module:
        cin = block.in_shape[0]
        if block.kind == "conv":
            module: nn.Module = ConvBNAct(cin, block.out_channels, block.kernel, block.stride, block.activation)
        elif block.kind == "mbconv":
            module = MBConv(
                cin,
                block.out_channels,
                block.kernel,
                block.stride,
                block.mid_channels,
                block.activation,
                block.se,
            )
        elif block.kind == "head":
            module = _HeadBlock(cin, block.mid_channels, block.out_channels)
        else:
            raise ValueError(f"mbv3 has no block kind {block.kind!r}")
        init_weights(module)
        return module.eval()

    def split_modules(self, module: nn.Module, arch: MBV3Arch) -> list[nn.Module]:
        """One segment per block (every boundary of the chain is a cut)."""
        if not isinstance(module, StaticMobileNetV3) or module.arch != arch:
            raise ValueError(f"split_modules needs the StaticMobileNetV3 of arch {arch}")
        return module.segments()

    def build_supernet(self) -> nn.Module:
        from search_spaces.mbv3.supernet import MobileNetV3Supernet

        return MobileNetV3Supernet(self.config)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "config": self.config.to_json()}


class _HeadBlock(nn.Module):
    """Global pool, feature-mix 1x1 convolution with h-swish, classifier (the head after the
    final expand layer), for timing in isolation."""

    def __init__(self, cin: int, mix: int, classes: int) -> None:
        super().__init__()
        self.feature_mix = nn.Conv2d(cin, mix, 1, bias=False)
        self.classifier = nn.Linear(mix, classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        x = nn.functional.hardswish(self.feature_mix(x.mean((2, 3), keepdim=True))).flatten(1)
        return self.classifier(x)


def _out(h: int, stride: int) -> int:
    return (h - 1) // stride + 1


@functools.lru_cache(maxsize=4096)  # a block is immutable; a search builds the same few hundred
def _conv_block(cin: int, cout: int, k: int, stride: int, h: int, act: str) -> BlockSpec:
    oh = _out(h, stride)
    return BlockSpec(
        kind="conv",
        in_shape=(cin, h, h),
        out_channels=cout,
        stride=stride,
        kernel=k,
        activation=act,
        flops=cout * cin * k * k * oh * oh,
        params=cout * cin * k * k + 2 * cout,
    )


@functools.lru_cache(maxsize=4096)
def _mbconv_block(
    cin: int, cout: int, k: int, stride: int, mid: int, h: int, act: str, se: bool, expand: int
) -> BlockSpec:
    oh = _out(h, stride)
    flops = params = 0
    if mid != cin:  # 1x1 expand + BN
        flops += mid * cin * h * h
        params += mid * cin + 2 * mid
    flops += mid * k * k * oh * oh  # depthwise
    params += mid * k * k + 2 * mid
    if se:
        r = se_channels(mid)
        flops += 2 * mid * r
        params += 2 * mid * r + r + mid
    flops += cout * mid * oh * oh  # 1x1 project
    params += cout * mid + 2 * cout
    return BlockSpec(
        kind="mbconv",
        in_shape=(cin, h, h),
        out_channels=cout,
        stride=stride,
        kernel=k,
        expand=float(expand),
        mid_channels=mid,
        activation=act,
        se=se,
        residual=stride == 1 and cin == cout,
        flops=flops,
        params=params,
    )
