"""Aggregation: weighted averages of tensors, slice by slice, over the devices that hold them.

A device's tensor may be a prefix slice of the cloud's (HeteroFL's narrower copies) or
the whole tensor (a Nebula module, FedAvg). Every element becomes
``(keep * old + sum_d w_d * t_d) / (keep + sum_d w_d)`` over the devices whose tensor
covers it; elements no device covers keep their value. Nebula weighs a module's tensors by
the device's importance of that module (normalised over the devices that hold it, which
the division does), the classifier row by row by how many samples of that class the device
trained on (a class's output is learnt only by the devices that see the class; the others
merely push it down), and the other shared tensors (stem) by sample count. A weight may be
a number or a 1-D tensor of per-row weights (dimension 0).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch

from search_spaces._supernet import prefix_slice

Weight = Callable[[str], "float | torch.Tensor"]
HEAD_KEYS = ("head.2.weight", "head.2.bias")  # the classifier of a modular network, one row per class
_MODULE_KEY = re.compile(r"^layers\.(\d+)\.(\d+)\.")


def weighted_average(
    target: Mapping[str, torch.Tensor],
    updates: Sequence[tuple[Mapping[str, torch.Tensor], Weight]],
    keep: float = 0.0,
    where: Callable[[torch.Size, torch.Size], tuple[slice, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    """A new state: ``target`` with every covered element replaced by the weighted average.

    ``where(big, small)`` places a device's tensor in the cloud's (default: a prefix slice;
    the elastic supernet centres kernels).
    """
    where = where or prefix_slice
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
            w = _as_weight(weight(name), tensor, name)
            if w is None:
                continue
            at = where(big.shape, tensor.shape)
            if name not in totals:
                totals[name] = torch.zeros_like(big, dtype=torch.float64)
                weights[name] = torch.zeros_like(big, dtype=torch.float64)
            totals[name][at] += w * tensor.double()
            weights[name][at] += w.expand(tensor.shape)
    out = {k: v.clone() for k, v in target.items()}
    for name, total in totals.items():
        w = weights[name]
        blended = (keep * out[name].double() + total) / (keep + w).clamp_min(1e-300)
        out[name] = torch.where(w > 0, blended, out[name].double()).to(out[name].dtype)
    out.update(counters)
    return out


def _as_weight(w: float | torch.Tensor, tensor: torch.Tensor, name: str) -> torch.Tensor | None:
    """``w`` as a float64 tensor broadcastable to ``tensor`` (``None`` when it is all zero)."""
    w = torch.as_tensor(w, dtype=torch.float64)
    if w.dim() == 1:
        if len(w) != tensor.shape[0]:
            raise ValueError(f"{name}: {len(w)} row weights for {tensor.shape[0]} rows")
        w = w.view(-1, *([1] * (tensor.dim() - 1)))
    elif w.dim():
        raise ValueError(f"{name}: a weight is a number or one weight per row")
    if (w < 0).any() or not torch.isfinite(w).all():
        raise ValueError(f"negative or non-finite aggregation weight for {name}")
    return None if not (w > 0).any() else w


def module_of(name: str) -> tuple[int, int] | None:
    """``(layer, module)`` of a module tensor's name, or ``None`` for shared tensors."""
    m = _MODULE_KEY.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def importance_weight(importance: Sequence[Sequence[float]], samples: int,
                      class_counts: Sequence[int] | None = None) -> Weight:
    """Nebula's weights: a module's importance on the device; the classifier's rows by the
    device's samples of each class (when ``class_counts`` is given); other tensors by samples."""

    def weight(name: str) -> float | torch.Tensor:
        key = module_of(name)
        if key:
            return float(importance[key[0]][key[1]])
        if class_counts is not None and name in HEAD_KEYS:
            return torch.as_tensor(class_counts, dtype=torch.float64)
        return float(samples)

    return weight


def sample_weight(samples: int) -> Callable[[str], float]:
    """FedAvg and HeteroFL: every tensor by the device's sample count."""
    return lambda name: float(samples)
