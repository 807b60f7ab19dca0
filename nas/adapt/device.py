"""What one device does in a round: load its sub-model, fine-tune on local data, pack the update.

:func:`run_device` is a plain top-level function of plain data (a :class:`DeviceJob` of
numpy arrays and safetensors bytes), so the simulator runs it in-process or as a Ray
task unchanged. It also measures what training cost the device: peak training memory
(weights, gradients and momentum of the trained tensors, plus every activation tensor
autograd actually saved for the backward pass, counted by storage) and the median wall
time per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas.adapt.config import LocalSection
from nas.adapt.decomposition import build_from_spec
from nas.adapt.wire import Update, pack, unpack
from nas.evaluation import accuracy_on_arrays, recalibrate_bn

FROZEN_PREFIX = "selector."  # the selector is routed with, never trained on devices


@dataclass(frozen=True)
class DeviceJob:
    """Everything a device gets for one round (the model as safetensors bytes)."""

    device: int
    config: dict[str, Any]  # the decomposition's spec: how to build the model
    arch: dict[str, Any]
    width_ratio: float
    weights: bytes
    base_version: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    training: LocalSection
    seed: int
    upload: bool = True
    importance: tuple[tuple[float, ...], ...] | None = None
    class_histogram: int = 0  # > 0: send the training labels' histogram over this many classes


@dataclass(frozen=True)
class DeviceResult:
    """What came back: the update (if any), the trained weights kept on the device, figures."""

    device: int
    update: Update | None
    local_weights: bytes
    accuracy_before: float
    accuracy_after: float
    peak_memory_bytes: int
    time_per_batch_s: float
    batches: int
    extra: dict[str, Any] = field(default_factory=dict)


def build_model(spec: dict[str, Any], arch: dict[str, Any], width_ratio: float, weights: bytes) -> torch.nn.Module:
    """The job's model (``spec`` from :meth:`nas.adapt.decomposition.Decomposition.spec`) with its weights."""
    net = build_from_spec(spec, arch, width_ratio)
    net.load_state_dict(unpack(weights))
    return net


def _saved_activation_bytes(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes of the distinct non-parameter storages autograd saves for one training batch."""
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    seen: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    net.zero_grad(set_to_none=True)
    return sum(seen.values())


def local_batches(x: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Equal batches of ``x`` for batch-norm recalibration (a cumulative average weights batches,
    not samples): the short tail is dropped unless it is all there is; batches of one sample
    are never used (batch norm needs two)."""
    sizes = [min(batch_size, len(x) - i) for i in range(0, len(x), batch_size)]
    return [x[i : i + size] for i, size in zip(range(0, len(x), batch_size), sizes)
            if size >= 2 and (size == batch_size or len(sizes) == 1)]


def run_device(job: DeviceJob) -> DeviceResult:
    """Fine-tune the job's model on its local data and pack the trained tensors."""
    torch.set_num_threads(1)
    torch.manual_seed(job.seed)
    net = build_model(job.config, job.arch, job.width_ratio, job.weights)
    before = accuracy_on_arrays(net, job.test_x, job.test_y)
    trained = [p for name, p in net.named_parameters() if not name.startswith(FROZEN_PREFIX)]
    for name, p in net.named_parameters():
        p.requires_grad_(not name.startswith(FROZEN_PREFIX))
    cfg = job.training
    x, y = torch.from_numpy(job.train_x), torch.from_numpy(job.train_y)
    net.train()
    param_bytes = sum(p.numel() * p.element_size() for p in net.parameters())
    trained_bytes = sum(p.numel() * p.element_size() for p in trained)
    saved = _saved_activation_bytes(net, x[: cfg.batch_size], y[: cfg.batch_size]) if cfg.epochs else 0
    opt = torch.optim.SGD(trained, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(job.seed)
    times = []
    for _ in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(len(y)))
        for i in range(0, len(y), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            start = time.perf_counter()
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
    if job.training.recalibrate_bn and times:
        with torch.no_grad():  # statistics of the weights the device ends with (OFA does the same)
            recalibrate_bn(net, local_batches(x, cfg.batch_size))
    after = accuracy_on_arrays(net, job.test_x, job.test_y)
    state = net.state_dict()
    update = None
    if job.upload:
        tensors = {k: v for k, v in state.items() if not k.startswith(FROZEN_PREFIX)}
        counts = (tuple(np.bincount(job.train_y, minlength=job.class_histogram).tolist())
                  if job.class_histogram else None)
        update = Update.build(job.device, job.base_version, tensors, len(y), job.importance, counts)
    return DeviceResult(
        device=job.device,
        update=update,
        local_weights=pack(state),
        accuracy_before=before,
        accuracy_after=after,
        peak_memory_bytes=param_bytes + 2 * trained_bytes + saved if cfg.epochs else param_bytes,
        time_per_batch_s=float(np.median(times)) if times else 0.0,
        batches=len(times),
    )
