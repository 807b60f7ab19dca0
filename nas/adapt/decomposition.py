"""The two decompositions of a cloud model into device sub-models, behind one interface.

- :class:`ModularDecomposition` (``decomposition: modular``): Nebula's modular layers (the
  ``nebula`` space). A device's sub-model is the set of modules its data routes to, picked
  by the knapsack under its budgets; module importance comes from the selector.
- :class:`ElasticDecomposition` (``decomposition: elastic``): the mbv3 elastic supernet. A
  device's sub-network is the stage-wise knapsack's pick under its budgets
  (:func:`nas.adapt.elastic.choose_elastic_arch`); its tensors are centre/prefix slices of
  the supernet's, and they return with the same slice-wise weighted average that
  ``MobileNetV3Supernet.absorb_many`` does, weighted by samples (no selector, so no module
  importance) and the classifier row by row by class counts.

The simulator and the methods only talk to a :class:`Decomposition`; a device rebuilds
its model from :meth:`Decomposition.spec` with :func:`build_from_spec`, so device jobs
stay plain data (Ray tasks or in-process calls alike).
"""

from __future__ import annotations

import abc
import dataclasses
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.adapt.aggregate import HEAD_KEYS, Weight, importance_weight, module_of, prefix_slice
from nas.adapt.costs import Cost, ModularCosts
from nas.adapt.data import DomainData
from nas.errors import EdgenasError
from search_spaces import get_space
from search_spaces.modular import ModularArch, ModularConfig, ModularNet, NebulaSpace


class Decomposition(abc.ABC):
    """How the cloud model splits into device sub-models, and how their tensors come back."""

    name = ""
    head_keys: tuple[str, ...] = ()  # the classifier's tensors (one row per class)

    def __init__(self, space: Any, batch_size: int) -> None:
        self.space, self.batch_size = space, batch_size
        self._shapes: dict[tuple[Any, float], dict[str, torch.Size]] = {}

    # --- models -----------------------------------------------------------------------
    @abc.abstractmethod
    def build(self, arch: Any = None, width_ratio: float = 1.0) -> nn.Module:
        """The cloud model (``arch=None``) or a device's sub-model, freshly initialised."""

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """Plain data from which :func:`build_from_spec` rebuilds device models."""

    @abc.abstractmethod
    def pretrain(self, cloud: nn.Module, data: DomainData, cloud_cfg: Any, classes_per_task: int, seed: int,
                 progress: bool) -> None:
        """Train the cloud model on the cloud's proxy data (offline, once)."""

    @abc.abstractmethod
    def where(self, big: torch.Size, small: torch.Size) -> tuple[slice, ...]:
        """Where a sub-model tensor of shape ``small`` sits in the cloud's tensor ``big``."""

    # --- planning -----------------------------------------------------------------------
    @abc.abstractmethod
    def choose(self, cloud: nn.Module, x: np.ndarray, budget: Cost, device: int,
               min_importance: float) -> tuple[Any, np.ndarray | None]:
        """The device's sub-model under ``budget`` and its importance per unit (``None``: none).

        Raises :class:`nas.adapt.methods.BudgetError` when nothing fits.
        """

    @abc.abstractmethod
    def cost(self, arch: Any, width_ratio: float = 1.0) -> Cost:
        """Training memory, compute and bandwidth of a sub-model (``width_ratio``: HeteroFL's copies)."""

    @abc.abstractmethod
    def units(self, arch: Any) -> int:
        """How many trainable units (modules, blocks) a sub-model holds."""

    def full_arch(self) -> Any:
        return self.space.largest()

    def group(self, name: str) -> str:
        """The unit a tensor travels and is versioned with (a module or block, else its top-level part)."""
        return name.split(".", 1)[0]

    def weight(self, importance: np.ndarray | None, samples: int, class_counts: Sequence[int] | None) -> Weight:
        """Aggregation weights of one device's tensors."""
        counts = torch.as_tensor(class_counts, dtype=torch.float64) if class_counts is not None else None
        return lambda name: counts if counts is not None and name in self.head_keys else float(samples)

    # --- tensors ------------------------------------------------------------------------
    def shapes(self, arch: Any, width_ratio: float = 1.0) -> dict[str, torch.Size]:
        key = (arch, width_ratio)
        if key not in self._shapes:
            self._shapes[key] = {k: v.shape for k, v in self.build(arch, width_ratio).state_dict().items()}
        return self._shapes[key]

    def extract(self, state: dict[str, torch.Tensor], arch: Any, width_ratio: float = 1.0) -> dict[str, torch.Tensor]:
        """Copies of the slices of the cloud ``state`` that the sub-model ``arch`` holds."""
        return {k: state[k][self.where(state[k].shape, s)].clone() if len(s) else state[k].clone()
                for k, s in self.shapes(arch, width_ratio).items()}

    def model(self, state: dict[str, torch.Tensor], arch: Any, width_ratio: float = 1.0) -> nn.Module:
        """The sub-model ``arch`` loaded with its slices of ``state``."""
        net = self.build(arch, width_ratio)
        net.load_state_dict(self.extract(state, arch, width_ratio))
        return net


class ModularDecomposition(Decomposition):
    """Nebula's modular layers: sub-models are the modules the selector routes a device's data to."""

    name = "modular"
    head_keys = HEAD_KEYS

    def __init__(self, space: NebulaSpace, batch_size: int) -> None:
        super().__init__(space, batch_size)
        self.costs = ModularCosts(space.config, batch_size)

    def build(self, arch: Any = None, width_ratio: float = 1.0) -> nn.Module:
        return ModularNet(self.space.config, arch, width_ratio)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.name, "config": dataclasses.asdict(self.space.config)}

    def pretrain(self, cloud, data, cloud_cfg, classes_per_task, seed, progress):  # type: ignore[no-untyped-def]
        from nas.adapt.cloud import pretrain, sharpen

        pretrain(cloud, data.proxy_x, data.proxy_y, cloud_cfg, seed, progress)
        sharpen(cloud, data.proxy_x, data.proxy_y, cloud_cfg, classes_per_task, seed, progress)

    def where(self, big: torch.Size, small: torch.Size) -> tuple[slice, ...]:
        return prefix_slice(big, small)

    def choose(self, cloud, x, budget, device, min_importance):  # type: ignore[no-untyped-def]
        from nas.adapt.cloud import module_importance
        from nas.adapt.methods import choose_modules

        importance = module_importance(cloud, x)  # the device holds the (frozen) selector
        return choose_modules(importance, budget, self.costs, min_importance, device), importance

    def cost(self, arch: Any, width_ratio: float = 1.0) -> Cost:
        return self.costs.of_arch(arch) if width_ratio == 1.0 else self.costs.full(width_ratio)

    def units(self, arch: ModularArch) -> int:
        return sum(1 for _, k in arch.modules() if k != self.space.config.skip)

    def group(self, name: str) -> str:
        key = module_of(name)
        return f"layers.{key[0]}.{key[1]}" if key else super().group(name)

    def weight(self, importance, samples, class_counts):  # type: ignore[no-untyped-def]
        if importance is None:
            return super().weight(importance, samples, class_counts)
        return importance_weight(np.asarray(importance).tolist(), samples, class_counts)


class ElasticDecomposition(Decomposition):
    """The mbv3 elastic supernet: sub-networks by a stage-wise knapsack, returned slice-wise."""

    name = "elastic"
    head_keys = ("head.classifier.weight", "head.classifier.bias")

    def build(self, arch: Any = None, width_ratio: float = 1.0) -> nn.Module:
        if width_ratio != 1.0:
            raise EdgenasError("the elastic decomposition has no width-scaled copies (HeteroFL)")
        if arch is None:
            return self.space.build_supernet()
        from search_spaces.mbv3.static import StaticMobileNetV3

        return StaticMobileNetV3(self.space.config, arch)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.name, "config": self.space.config.to_json()}

    def pretrain(self, cloud, data, cloud_cfg, classes_per_task, seed, progress):  # type: ignore[no-untyped-def]
        """Sandwich rule on proxy data: the largest, the smallest and a random sub-network per step."""
        from tqdm import tqdm

        gen, rng = np.random.default_rng([seed, 11]), random.Random(seed)
        xt, yt = torch.from_numpy(data.proxy_x), torch.from_numpy(data.proxy_y)
        opt = torch.optim.SGD(cloud.parameters(), lr=cloud_cfg.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, cloud_cfg.pretrain_steps))
        cloud.train()
        for _ in tqdm(range(cloud_cfg.pretrain_steps), desc="cloud pretrain (elastic)", disable=not progress,
                      leave=False):
            idx = torch.from_numpy(gen.integers(0, len(yt), cloud_cfg.batch_size))
            opt.zero_grad(set_to_none=True)
            for arch in (self.space.largest(), self.space.smallest(), self.space.sample(rng)):
                F.cross_entropy(cloud(xt[idx], arch), yt[idx]).backward()
            opt.step()
            sched.step()

    def where(self, big: torch.Size, small: torch.Size) -> tuple[slice, ...]:
        from search_spaces.mbv3.elastic import center_or_prefix

        return center_or_prefix(big, small)

    def choose(self, cloud, x, budget, device, min_importance):  # type: ignore[no-untyped-def]
        from nas.adapt.elastic import choose_elastic_arch

        size = int(x.shape[-1]) if x.ndim == 4 else None  # the device's images set the resolution
        resolution = size if size in self.space.config.resolutions else None
        return choose_elastic_arch(self.space, budget, device, self.batch_size, resolution=resolution), None

    def cost(self, arch: Any, width_ratio: float = 1.0) -> Cost:
        from nas.adapt.elastic import arch_cost

        if width_ratio != 1.0:
            raise EdgenasError("the elastic decomposition has no width-scaled copies (HeteroFL)")
        return arch_cost(self.space, arch, self.batch_size)

    def units(self, arch: Any) -> int:
        return int(sum(arch.depths))

    def group(self, name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:3]) if parts[0] == "stages" else parts[0]


def elastic_space(input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """A CPU-sized mbv3 space for small square images (8x8 digits upwards)."""
    c, h, w = input_shape
    if h != w or h < 8:
        raise EdgenasError(f"decomposition: elastic needs square images of at least 8x8, got {h}x{w} "
                           "(use decomposition: modular for 1-D signals)")
    return get_space("mbv3", preset="small", in_channels=c, num_classes=num_classes, width_mult=0.25,
                     stem_stride=1, stage_strides=(1, 2, 1, 2, 1), resolutions=(h,), final_expand=160,
                     feature_mix=128, depths=(1, 2), kernels=(3, 5), expands=(3, 4, 6))


def build_from_spec(spec: dict[str, Any], arch: dict[str, Any], width_ratio: float) -> nn.Module:
    """A device's model from :meth:`Decomposition.spec` and an arch's JSON (weights not loaded)."""
    if spec["kind"] == "modular":
        return ModularNet(ModularConfig(**spec["config"]), ModularArch.from_json(arch), width_ratio)
    if spec["kind"] == "elastic":
        from search_spaces.mbv3 import MBV3Config
        from search_spaces.mbv3.arch import MBV3Arch
        from search_spaces.mbv3.static import StaticMobileNetV3

        return StaticMobileNetV3(MBV3Config.from_json(spec["config"]), MBV3Arch.from_json(arch))
    raise ValueError(f"unknown decomposition {spec['kind']!r}")
