"""Offload when unsure: the edge answers when its sub-network is confident, else the cloud's
largest network does.

:func:`evaluate_cascade` measures, on real images, everything a threshold changes:

1. the edge network (compiled as the edge device was profiled) runs every image, timed,
   and its confidence is kept: the largest softmax probability (``softmax``) or the gap
   between the two largest (``margin``);
2. every image is also sent to the cloud process (compiled as the cloud was profiled),
   over TCP on 127.0.0.1 through the software link, timed end to end (the input crosses
   at ``precision``);
3. for each threshold, an image whose confidence is below it is offloaded: its answer is
   the cloud's and its latency the edge's plus the offload's. Accuracy, mean and 95th
   percentile latency and the share offloaded follow, next to edge only (never offload)
   and cloud only (always send, no edge network);
4. the chosen threshold (:func:`pick_threshold`: the fastest meeting a target accuracy,
   or the most accurate meeting a mean-latency budget) is then run for real once more,
   the edge deciding per image and offloading only when unsure, to check step 3's sums.

Example::

    result = evaluate_cascade(space, edge_arch, edge_net, cloud_net, images, labels,
                              edge_profile, cloud_profile, parse_link("20mbit,40ms"))
    pick_threshold(result.sweep, target_accuracy=95.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nas.errors import EdgenasError
from nas.split.link import Link
from nas.split.parts import compile_part, split_network
from nas.split.run import CloudLink, RunSettings

CONFIDENCES = ("softmax", "margin")


def confidence(logits: np.ndarray, kind: str = "softmax") -> np.ndarray:
    """Per row of ``logits``: the largest softmax probability, or the gap between the two largest."""
    if kind not in CONFIDENCES:
        raise EdgenasError(f"--confidence {kind!r}: use one of {', '.join(CONFIDENCES)}")
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    top = np.sort(p, axis=1)
    return top[:, -1] if kind == "softmax" else top[:, -1] - top[:, -2]


@dataclass
class CascadeResult:
    """Per-image measurements and the threshold sweep built from them."""

    confidence_kind: str
    link: dict[str, Any]
    precision: str
    edge_how: str
    cloud_how: str
    confidence: np.ndarray
    edge_correct: np.ndarray
    cloud_correct: np.ndarray
    edge_ms: np.ndarray
    offload_ms: np.ndarray
    sweep: list[dict[str, float]] = field(default_factory=list)
    chosen: dict[str, Any] | None = None
    chosen_run: dict[str, float] | None = None

    def point(self, threshold: float) -> dict[str, float]:
        """Accuracy and latency if images below ``threshold`` are offloaded (measured, combined)."""
        off = self.confidence < threshold
        correct = np.where(off, self.cloud_correct, self.edge_correct)
        ms = self.edge_ms + np.where(off, self.offload_ms, 0.0)
        return {"threshold": float(threshold), "accuracy": 100.0 * float(correct.mean()),
                "mean_ms": float(ms.mean()), "p95_ms": float(np.percentile(ms, 95)),
                "offloaded": float(off.mean())}

    def baselines(self) -> dict[str, dict[str, float]]:
        return {
            "edge_only": {"accuracy": 100.0 * float(self.edge_correct.mean()), "mean_ms": float(self.edge_ms.mean()),
                          "p95_ms": float(np.percentile(self.edge_ms, 95)), "offloaded": 0.0},
            "cloud_only": {"accuracy": 100.0 * float(self.cloud_correct.mean()),
                           "mean_ms": float(self.offload_ms.mean()),
                           "p95_ms": float(np.percentile(self.offload_ms, 95)), "offloaded": 1.0},
        }

    def to_json(self) -> dict[str, Any]:
        return {"kind": "edgenas-cascade", "confidence": self.confidence_kind, "link": self.link,
                "precision": self.precision, "edge_how": self.edge_how, "cloud_how": self.cloud_how,
                "images": int(len(self.confidence)), "baselines": self.baselines(), "sweep": self.sweep,
                "chosen": self.chosen, "chosen_run": self.chosen_run,
                "measured_how": "each image timed on the edge and, separately, offloaded to the cloud process "
                                "(wall clock); a threshold's latency is the edge's plus, when offloaded, the "
                                "offload's; the chosen threshold is then run for real (chosen_run)"}


def evaluate_cascade(space: Any, edge_arch: Any, edge_net: torch.nn.Module, cloud_arch: Any,
                     cloud_net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, edge_profile: Any,
                     cloud_profile: Any, link: Link, *, precision: str = "fp32", kind: str = "softmax",
                     thresholds: Sequence[float] | None = None, target_accuracy: float | str | None = None,
                     max_latency_ms: float | None = None, settings: RunSettings = RunSettings(),
                     log: Any = None) -> CascadeResult:
    """Measure the cascade of ``edge_net`` (arch ``edge_arch``) and ``cloud_net`` (``cloud_arch``,
    usually the space's largest) on ``images`` (normalised, at the data's size) and ``labels``.

    ``target_accuracy`` is a percentage, or ``"cloud-D"``: within ``D`` points of what the
    cloud alone reaches on these images."""
    say = log or (lambda _line: None)
    if len(images) == 0:
        raise EdgenasError("the cascade needs at least one image")
    confidence(np.zeros((1, 2)), kind)  # checks the kind before minutes of work
    edge_in = _resized(images, edge_arch)
    cloud_in = _resized(images, cloud_arch)
    labels_np = labels.numpy()
    last = len(space.cuts(edge_arch)) - 1
    edge_part, _ = split_network(space, edge_arch, edge_net.eval(), last)
    with CloudLink(space, cloud_arch, cloud_net.eval(), 0, cloud_profile, link, settings, precision) as cloud:
        edge = compile_part(edge_part, edge_profile)
        say(f"edge network: {edge.how}")
        cloud_how = cloud.connect()
        say(f"cloud network: {cloud_how}; timing {len(images)} images each way")
        for i in range(settings.warmup):
            edge.run(edge_in[i % len(edge_in)][None])
            cloud.request(cloud_in[i % len(cloud_in)][None])
        edge_logits, edge_ms, cloud_logits, offload_ms = [], [], [], []
        import time

        for i in range(len(images)):
            t0 = time.perf_counter()
            edge_logits.append(edge.run(edge_in[i][None])[0])
            t1 = time.perf_counter()
            reply, _ = cloud.request(cloud_in[i][None])
            t2 = time.perf_counter()
            cloud_logits.append(reply.array[0])
            edge_ms.append((t1 - t0) * 1e3)
            offload_ms.append((t2 - t1) * 1e3)
        conf = confidence(np.stack(edge_logits), kind)
        result = CascadeResult(kind, link.to_json(), precision, edge.how, cloud_how, conf,
                               np.stack(edge_logits).argmax(1) == labels_np,
                               np.stack(cloud_logits).argmax(1) == labels_np, np.asarray(edge_ms),
                               np.asarray(offload_ms))
        grid = thresholds if thresholds is not None else default_thresholds(conf)
        result.sweep = [result.point(t) for t in grid]
        if target_accuracy is not None or max_latency_ms is not None:
            target = resolve_target(target_accuracy, result.baselines())
            result.chosen = pick_threshold(result.sweep, target_accuracy=target, max_latency_ms=max_latency_ms)
            if result.chosen.get("threshold") is not None:
                say(f"running the cascade for real at threshold {result.chosen['threshold']:.4f}")
                result.chosen_run = _run_cascade(edge, cloud, edge_in, cloud_in, labels_np, kind,
                                                 result.chosen["threshold"])
    return result


def resolve_target(target: float | str | None, baselines: dict[str, dict[str, float]]) -> float | None:
    """A target accuracy (%): a number, or ``cloud-D`` (``D`` points below cloud only's)."""
    if target is None or isinstance(target, (int, float)):
        return target
    text = str(target).strip()
    try:
        if text.startswith("cloud-"):
            return baselines["cloud_only"]["accuracy"] - float(text.removeprefix("cloud-"))
        return float(text)
    except ValueError:
        raise EdgenasError(f"--target-accuracy {text!r}: give a percentage (97.5) or cloud-D (within D points of "
                           "the cloud's accuracy, e.g. cloud-0.5)") from None


def default_thresholds(conf: np.ndarray, points: int = 41) -> list[float]:
    """0 (never offload), the confidences' quantiles, and just above the largest (always offload)."""
    inner = np.quantile(conf, np.linspace(0.0, 1.0, points))
    return sorted({0.0, *map(float, inner), float(np.nextafter(conf.max(), np.inf))})


def pick_threshold(sweep: Sequence[dict[str, float]], *, target_accuracy: float | None = None,
                   max_latency_ms: float | None = None) -> dict[str, Any]:
    """The fastest threshold reaching ``target_accuracy`` (%), or the most accurate whose mean
    latency is within ``max_latency_ms``; ``{"threshold": None, "why": ...}`` if none does."""
    if (target_accuracy is None) == (max_latency_ms is None):
        raise EdgenasError("pick a threshold for either --target-accuracy or --max-latency-ms")
    if target_accuracy is not None:
        ok = [p for p in sweep if p["accuracy"] >= target_accuracy]
        best = min(ok, key=lambda p: (p["mean_ms"], -p["accuracy"]), default=None)
        goal = f"accuracy >= {target_accuracy:g} %"
    else:
        ok = [p for p in sweep if p["mean_ms"] <= max_latency_ms]  # type: ignore[operator]
        best = max(ok, key=lambda p: (p["accuracy"], -p["mean_ms"]), default=None)
        goal = f"mean latency <= {max_latency_ms:g} ms"
    if best is None:
        return {"threshold": None, "goal": goal, "why": "no threshold reaches it on these images"}
    return {**best, "goal": goal}


def _run_cascade(edge: Any, cloud: Any, edge_in: np.ndarray, cloud_in: np.ndarray, labels: np.ndarray, kind: str,
                 threshold: float) -> dict[str, float]:
    """The cascade as it would serve: per image, the edge runs, decides, and offloads if unsure."""
    import time

    ms, correct, off = [], [], []
    for i in range(len(edge_in)):
        t0 = time.perf_counter()
        logits = edge.run(edge_in[i][None])
        unsure = bool(confidence(logits, kind)[0] < threshold)
        if unsure:
            logits = cloud.request(cloud_in[i][None])[0].array
        ms.append((time.perf_counter() - t0) * 1e3)
        correct.append(int(logits[0].argmax()) == int(labels[i]))
        off.append(unsure)
    return {"threshold": threshold, "accuracy": 100.0 * float(np.mean(correct)), "mean_ms": float(np.mean(ms)),
            "p95_ms": float(np.percentile(ms, 95)), "offloaded": float(np.mean(off))}


def _resized(images: torch.Tensor, arch: Any) -> np.ndarray:
    from nas.training.sandwich import resize_to

    size = getattr(arch, "resolution", None)
    out = resize_to(images, size) if size else images
    return np.ascontiguousarray(out.numpy(), dtype=np.float32)


__all__ = ["CONFIDENCES", "CascadeResult", "confidence", "default_thresholds", "evaluate_cascade", "pick_threshold", "resolve_target"]
