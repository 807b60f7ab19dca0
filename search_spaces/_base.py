"""The contract every search space fulfils, and the block description used for cost prediction.

A space knows how to sample, enumerate (for Optuna), encode and describe its
architectures, and how to count their cost without building them. Spaces that come with
a weight-sharing supernet also build it. Only torch and numpy are imported here, so the
package runs on machines that have nothing else (the lent GPU machine, for example).
"""

from __future__ import annotations

import abc
import functools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn


class Arch(Protocol):
    """What every space's architecture type provides (each space has its own frozen dataclass)."""

    def to_json(self) -> dict[str, Any]: ...

    def __hash__(self) -> int: ...


@dataclass(frozen=True)
class BlockSpec:
    """One block of a sub-network as it runs on a device, for block-level cost prediction.

    ``in_shape`` is ``(channels, height, width)`` of the block's input at batch 1.
    ``flops`` counts multiply-accumulates of convolutions and linear layers (fvcore's
    convention: one MAC is one FLOP; batch norm, activations and pooling are not counted);
    ``params`` counts every parameter, batch-norm affine parameters included.
    Transformer blocks use ``in_shape = (embed, tokens, 1)`` and also count the attention
    matmuls (``Q K^T`` and ``A V``) as FLOPs; their heads, key length and phase are in ``extra``.
    """

    kind: str
    in_shape: tuple[int, int, int]
    out_channels: int
    stride: int = 1
    kernel: int = 1
    expand: float = 1.0
    mid_channels: int = 0
    activation: str = "none"
    se: bool = False
    residual: bool = False
    flops: int = 0
    params: int = 0
    extra: tuple[tuple[str, Any], ...] = field(default=())

    # computed once per block (a search prices thousands of networks made of the same blocks);
    # cached_property writes the instance's __dict__, so it works on a frozen dataclass and
    # leaves equality, hashing and to_json (fields only) as they are
    @functools.cached_property
    def out_shape(self) -> tuple[int, int, int]:
        """Output ``(channels, height, width)``: stride-s convolutions with ``k//2`` padding."""
        _, h, w = self.in_shape
        return (self.out_channels, (h - 1) // self.stride + 1, (w - 1) // self.stride + 1)

    @functools.cached_property
    def memory_traffic(self) -> int:
        """Elements read and written at least once: input, output and weights (a roofline proxy)."""
        c, h, w = self.in_shape
        oc, oh, ow = self.out_shape
        mid = self.mid_channels * h * w + self.mid_channels * oh * ow if self.mid_channels else 0
        return c * h * w + oc * oh * ow + mid + self.params

    def key(self) -> str:
        """A canonical JSON string: equal blocks (same shapes and settings) have equal keys."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["in_shape"] = list(self.in_shape)
        data["extra"] = [list(kv) for kv in self.extra]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockSpec:
        data = dict(data)
        data["in_shape"] = tuple(data["in_shape"])
        data["extra"] = tuple(tuple(kv) for kv in data.get("extra", ()))
        return cls(**data)


@dataclass(frozen=True)
class Cut:
    """A place where a network can be split between two devices (split inference).

    ``index``: the first ``index`` blocks of ``blocks(arch)`` run before the cut (on the
    edge device), the rest after it (in the cloud); ``0`` sends the input, ``len(blocks)``
    sends nothing (edge only). ``shapes``: the tensors that cross the cut, batch 1, batch
    dimension left out (more than one where a network holds two live tensors, e.g. a
    stream and its routing gates). ``integer``: they are integer ids (token ids), which
    are sent as they are whatever the activation precision. ``label`` names the cut in
    tables ("input", "after stem", ...).
    """

    index: int
    shapes: tuple[tuple[int, ...], ...]
    label: str
    integer: bool = False

    @property
    def elements(self) -> int:
        """Values crossing the cut (at batch 1)."""
        return sum(math.prod(s) for s in self.shapes)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "shapes": [list(s) for s in self.shapes], "label": self.label,
                "integer": self.integer, "elements": self.elements}


class SearchSpace(abc.ABC):
    """A family of architectures: sample, suggest, encode, describe and cost them.

    Subclasses implement the abstract methods; the optional hooks at the end raise a clear
    error for spaces that cannot provide them (a tabular benchmark has no supernet).
    """

    name: str = ""

    #: Phases whose latency is profiled and predicted separately, the first the one a search
    #: budgets by default: ``()`` for a space whose networks run one way (one metric,
    #: ``latency_ms``); ``("decode", "prefill")`` for a language model (metrics ``decode_ms``
    #: and ``prefill_ms``). A space with phases accepts ``phase=`` in :meth:`blocks`,
    #: :meth:`build_static` and :meth:`example_input` (its blocks name their phase in
    #: ``extra``); without it they describe the space's default network.
    cost_phases: tuple[str, ...] = ()

    # --- architectures ------------------------------------------------------------
    @abc.abstractmethod
    def sample(self, rng: random.Random | None = None) -> Any:
        """A uniformly random architecture (``rng`` makes it reproducible)."""

    @abc.abstractmethod
    def smallest(self) -> Any:
        """The architecture with the least compute."""

    @abc.abstractmethod
    def largest(self) -> Any:
        """The architecture with the most compute (the teacher in in-place distillation)."""

    @abc.abstractmethod
    def suggest(self, trial: Any) -> Any:
        """An architecture from an Optuna trial; the parameter space is the same in every trial."""

    @abc.abstractmethod
    def arch_from_json(self, data: Any) -> Any:
        """Parse and validate an architecture from its JSON form (a dict or a JSON string)."""

    @abc.abstractmethod
    def validate(self, arch: Any) -> None:
        """Raise ``ValueError`` naming the field if ``arch`` does not belong to this space."""

    # --- descriptions -------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, arch: Any) -> np.ndarray:
        """A fixed-length float feature vector (``len(self.feature_names())``)."""

    @abc.abstractmethod
    def feature_names(self) -> list[str]:
        """Names of the entries of ``encode``'s vector."""

    @abc.abstractmethod
    def blocks(self, arch: Any) -> list[BlockSpec]:
        """The blocks of ``arch`` in execution order, with shapes, FLOPs and parameters."""

    def flops(self, arch: Any) -> int:
        """Multiply-accumulates at batch 1 (fvcore's convention), without building the network."""
        return sum(b.flops for b in self.blocks(arch))

    def params(self, arch: Any) -> int:
        """Parameters of the extracted sub-network, without building it."""
        return sum(b.params for b in self.blocks(arch))

    @abc.abstractmethod
    def input_shape(self, arch: Any) -> tuple[int, ...]:
        """Shape of one input of ``arch`` without the batch dimension: ``(channels, height,
        width)`` of an image, ``(tokens,)`` of a token sequence."""

    def example_input(
        self, what: Any, batch: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """An input for the module built for ``what``: an arch (``build_static``) or a
        :class:`BlockSpec` (``build_block``).

        The default is standard-normal floats of shape ``(batch, *input_shape(arch))`` or
        ``(batch, *block.in_shape)``; spaces whose inputs are something else (int64 token
        ids, hidden states laid out differently) override it. Profilers and tests call this
        rather than building inputs from shapes themselves.
        """
        shape = what.in_shape if isinstance(what, BlockSpec) else self.input_shape(what)
        return torch.randn(batch, *shape, generator=generator)

    # --- modules for timing (weights do not change latency) ---------------------
    @abc.abstractmethod
    def build_static(self, arch: Any) -> nn.Module:
        """A plain, freshly initialised ``nn.Module`` of ``arch`` (for timing and export)."""

    @abc.abstractmethod
    def build_block(self, block: BlockSpec) -> nn.Module:
        """A plain module computing exactly ``block`` (its input: ``example_input(block)``)."""

    # --- optional hooks -----------------------------------------------------------
    def build_supernet(self) -> nn.Module:
        """The weight-sharing supernet of this space."""
        raise TypeError(f"search space {self.name!r} has no supernet (it is tabular or static)")

    def enumerate(self) -> Sequence[Any]:
        """Every architecture, for spaces small enough to list."""
        raise TypeError(f"search space {self.name!r} is too large to enumerate")

    def cuts(self, arch: Any) -> list[Cut]:
        """Where ``arch`` can be split between an edge device and the cloud, in order.

        The first cut sends the input (cloud only), the last sends nothing (edge only).
        The default treats ``blocks(arch)`` as a chain, each block's output the next one's
        only input, and offers every boundary; spaces whose blocks are not a chain (cells,
        routed modules) override it and keep only the boundaries where the live tensors
        are known.
        """
        blocks = self.blocks(arch)
        integer = not self.example_input(arch).is_floating_point()
        out = [Cut(0, (tuple(self.input_shape(arch)),), "input", integer)]
        out += [Cut(i, (blocks[i - 1].out_shape,), f"after block {i} ({blocks[i - 1].kind})") for i in range(1, len(blocks))]
        out.append(Cut(len(blocks), (), "output (edge only)"))
        return out

    def split_modules(self, module: nn.Module, arch: Any) -> list[nn.Module]:
        """``module`` (``build_static(arch)`` or an extracted sub-network) as consecutive
        segments, one between each pair of neighbouring :meth:`cuts`, so that running them
        in order computes ``module(x)``; the segments share ``module``'s weights. Spaces
        whose networks can be split to run on two devices implement it."""
        raise TypeError(f"search space {self.name!r} cannot be split into parts to run (it plans splits only)")

    def arch_to_json(self, arch: Any) -> dict[str, Any]:
        return arch.to_json()

    def arch_key(self, arch: Any) -> str:
        """Canonical JSON string of ``arch``: a stable cache and database key."""
        return json.dumps(self.arch_to_json(arch), sort_keys=True, separators=(",", ":"))

    def describe(self) -> dict[str, Any]:
        """The space's identity and construction settings (stored in checkpoints and profiles)."""
        return {"name": self.name}
