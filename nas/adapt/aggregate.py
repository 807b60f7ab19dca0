"""Aggregation: weighted averages of tensors, slice by slice, over the devices that hold them.

A device's tensor may be a prefix slice of the cloud's (HeteroFL's narrower copies) or
the whole tensor (a Nebula module, FedAvg). Every element becomes
``(keep * old + sum_d w_d * t_d) / (keep + sum_d w_d)`` over the devices whose tensor
covers it; elements no device covers keep their value. Nebula weighs a module's tensors by
the device's importance of that module (normalised over the devices that hold it, which
the division does), and shared tensors (stem, head) by sample count.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch

_MODULE_KEY = re.compile(r"^layers\.(\d+)\.(\d+)\.")


def prefix_slice(big: torch.Size, small: torch.Size) -> tuple[slice, ...]:
    if len(big) != len(small) or any(s > b for s, b in zip(small, big)):
        raise ValueError(f"tensor of shape {tuple(small)} is not a slice of {tuple(big)}")
    return tuple(slice(0, s) for s in small)


def weighted_average(
    target: Mapping[str, torch.Tensor],
    updates: Sequence[tuple[Mapping[str, torch.Tensor], Callable[[str], float]]],
    keep: float = 0.0,
) -> dict[str, torch.Tensor]:
    """A new state: ``target`` with every covered element replaced by the weighted average."""
    if keep < 0:
        raise ValueError("keep must be non-negative")
    totals: dict[str, torch.Tensor] = {}
    weights: dict[str, torch.Tensor] = {}
    counters: dict[str, torch.Tensor] = {}
    for tensors, weight in updates:
        for name, tensor in tensors.items():
            big = target[name]
            if not big.is_floating_point():  # BN batch counters: keep the largest
                counters[name] = torch.maximum(counters.get(name, big), tensor.to(big.dtype))
                continue
            w = float(weight(name))
            if w < 0:
                raise ValueError(f"negative aggregation weight for {name}")
            if w == 0:
                continue
            where = prefix_slice(big.shape, tensor.shape)
            if name not in totals:
                totals[name] = torch.zeros_like(big, dtype=torch.float64)
                weights[name] = torch.zeros_like(big, dtype=torch.float64)
            totals[name][where] += w * tensor.double()
            weights[name][where] += w
    out = {k: v.clone() for k, v in target.items()}
    for name, total in totals.items():
        w = weights[name]
        blended = (keep * out[name].double() + total) / (keep + w).clamp_min(1e-300)
        out[name] = torch.where(w > 0, blended, out[name].double()).to(out[name].dtype)
    out.update(counters)
    return out


def module_of(name: str) -> tuple[int, int] | None:
    """``(layer, module)`` of a module tensor's name, or ``None`` for shared tensors."""
    m = _MODULE_KEY.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def importance_weight(importance: Sequence[Sequence[float]], samples: int) -> Callable[[str], float]:
    """Nebula's weights: a module's importance on the device; shared tensors by sample count."""

    def weight(name: str) -> float:
        key = module_of(name)
        return float(importance[key[0]][key[1]]) if key else float(samples)

    return weight


def sample_weight(samples: int) -> Callable[[str], float]:
    """FedAvg and HeteroFL: every tensor by the device's sample count."""
    return lambda name: float(samples)
