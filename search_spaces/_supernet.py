"""What every weight-sharing supernet does with its sub-networks' weights, written once.

A space's supernet subclasses :class:`SlicedSupernet` and says two things: which plain
module a sub-network is (:meth:`SlicedSupernet.static_model`) and where a sub-network's
tensor sits inside the supernet's (:meth:`SlicedSupernet.slice_of`: a prefix, or a centred
kernel). It then gets, with one behaviour for every space:

- ``with supernet.activate(arch): supernet(x)``: a scoped choice of sub-network;
- :meth:`SlicedSupernet.extract`: a plain module holding copies of the weights it uses;
- :meth:`SlicedSupernet.absorb` / :meth:`SlicedSupernet.absorb_many`: sub-networks' weights
  written back, averaged element by element over the slices they cover, after checking
  each module is exactly its arch (names, shapes, finite values).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


def prefix_slice(big: torch.Size, small: torch.Size) -> tuple[slice, ...]:
    """Where a ``small`` tensor sits in a ``big`` one when sub-networks take leading slices."""
    if len(big) != len(small) or any(s > b for s, b in zip(small, big)):
        raise ValueError(f"a {tuple(small)} tensor is not a prefix of a {tuple(big)} one")
    return tuple(slice(0, s) for s in small)


class SlicedSupernet(nn.Module, abc.ABC):
    """Base of the supernets whose sub-networks are slices of their weights."""

    #: State-dict names that alias another tensor (tied weights): checked, then not averaged twice.
    tied: dict[str, str] = {}

    def __init__(self) -> None:
        super().__init__()
        self._active: Any = None

    @abc.abstractmethod
    def static_model(self, arch: Any) -> nn.Module:
        """A freshly initialised plain module of ``arch`` with the supernet's parameter names."""

    def slice_of(self, big: torch.Size, small: torch.Size) -> tuple[slice, ...]:
        """Where a sub-network's tensor of shape ``small`` sits in the supernet's ``big`` one."""
        return prefix_slice(big, small)

    def chosen(self, arch: Any) -> Any:
        """``arch``, or the one :meth:`activate` chose (for ``forward``)."""
        arch = arch if arch is not None else self._active
        if arch is None:
            raise RuntimeError("no sub-network chosen: call supernet(x, arch) or use `with supernet.activate(arch):`")
        return arch

    @contextmanager
    def activate(self, arch: Any) -> Iterator[SlicedSupernet]:
        """Scope in which ``supernet(x)`` runs ``arch``; the previous choice is restored after."""
        previous, self._active = self._active, arch
        try:
            yield self
        finally:
            self._active = previous

    @torch.no_grad()
    def extract(self, arch: Any) -> nn.Module:
        """A plain module of ``arch`` holding copies of the weights it uses (same device and
        floating dtype as the supernet, same training mode)."""
        static = self.static_model(arch)
        source = self.state_dict()
        for name, tensor in static.state_dict().items():
            big = source[name]
            tensor.copy_(big[self.slice_of(big.shape, tensor.shape)])
        like = next(self.parameters())
        return static.to(device=like.device, dtype=like.dtype).train(self.training)

    @torch.no_grad()
    def absorb(self, arch: Any, module: nn.Module, weight: float = 1.0) -> None:
        """Blend a sub-network's weights into the slices it covers.

        ``new = (1 - weight) * old + weight * sub`` on every element ``module`` covers (BN
        running statistics included); elements it does not cover are untouched.
        """
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"absorb weight must be in (0, 1], got {weight}")
        self.absorb_many([(arch, module, weight)], keep=1.0 - weight)

    @torch.no_grad()
    def absorb_many(self, updates: Sequence[tuple[Any, nn.Module, float]], keep: float = 0.0) -> None:
        """Weighted average of several sub-networks, element by element (block-wise aggregation).

        Each element becomes ``(keep * old + sum_i w_i * sub_i) / (keep + sum_i w_i)`` over the
        updates that cover it; elements no update covers are untouched. ``keep`` weighs the
        cloud model's current value (0 replaces covered elements by the updates' average).
        Every module is checked before anything is written.
        """
        if keep < 0 or any(w < 0 for _, _, w in updates):
            raise ValueError("absorb weights must be non-negative")
        target = self.state_dict()
        totals: dict[str, torch.Tensor] = {}
        weights: dict[str, torch.Tensor] = {}
        states = [(self._checked_state(arch, module), w) for arch, module, w in updates]
        for state, w in states:
            for name, tensor in state.items():
                big = target[name]
                if not big.is_floating_point():
                    continue  # num_batches_tracked: counters are not averaged
                if name not in totals:
                    totals[name] = torch.zeros_like(big, dtype=torch.float32)
                    weights[name] = torch.zeros_like(big, dtype=torch.float32)
                where = self.slice_of(big.shape, tensor.shape)
                totals[name][where] += w * tensor.detach().float().to(big.device)
                weights[name][where] += w
        for name, total in totals.items():
            big, w = target[name], weights[name]
            blended = (keep * big.float() + total) / (keep + w).clamp_min(1e-12)
            big.copy_(torch.where(w > 0, blended, big.float()).to(big.dtype))

    def _checked_state(self, arch: Any, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module``'s state without tied aliases, after checking it is exactly ``arch``."""
        state = module.state_dict()
        expected = {k: v.shape for k, v in self.static_model(arch).state_dict().items()}
        got = {k: v.shape for k, v in state.items()}
        if expected != got:
            missing = sorted(set(expected) - set(got))[:3]
            unknown = sorted(set(got) - set(expected))[:3]
            wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])[:3]
            raise ValueError(
                f"module does not match arch {arch}: missing {missing}, unexpected {unknown}, "
                f"wrong shapes {wrong}"
            )
        for alias, name in self.tied.items():
            if not torch.equal(state[alias], state[name]):
                raise ValueError(f"module for arch {arch} has {alias} untied from {name}")
            del state[alias]
        for name, tensor in state.items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ValueError(f"module for arch {arch} has non-finite values in {name}")
        return state


__all__ = ["SlicedSupernet", "prefix_slice"]
