"""Where a trial's accuracy comes from: a tabular benchmark or the supernet (cached).

* :class:`TabularAccuracy` (``nb201``): the 12-epoch NAS-Bench-201 accuracy table; the
  search optimises the validation accuracy and records the test accuracy beside it.
* :class:`SupernetAccuracy` (``mbv3`` and any space with a supernet): the arch is
  activated in the trained supernet, BN recalibrated on the calibration split, and
  measured on the validation split (:func:`nas.evaluation.evaluate_arch`), through the
  :class:`~nas.search.cache.AccuracyCache`. The supernet is loaded on first use, so a
  warm cache needs no model at all.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError
from nas.search.cache import AccuracyCache, CachedAccuracy


@dataclass
class TabularAccuracy:
    """NAS-Bench-201 accuracy (%) of a cell, from ``shared/data/nb201/accuracy.csv``."""

    dataset: str = "cifar100"
    split: str = "valid"
    _table: Any = field(default=None, repr=False)

    def _values(self) -> Any:
        if self._table is None:
            from nas.tabular import load_nb201_accuracy

            self._table = load_nb201_accuracy()
            self._table.accuracy(self.dataset, self.split)  # validates the names
        return self._table

    def evaluate(self, arch: Any) -> tuple[float, dict[str, Any]]:
        return self.evaluate_many([arch])[0]

    def evaluate_many(self, archs: Sequence[Any]) -> list[tuple[float, dict[str, Any]]]:
        table = self._values()
        index = [a.index for a in archs]
        acc = table.accuracy(self.dataset, self.split)[index]
        test = table.accuracy(self.dataset, "test")[index]
        return [(float(a), {"test_accuracy": float(t)}) for a, t in zip(acc, test)]

    def describe(self) -> dict[str, Any]:
        return {"kind": "nb201-table", "dataset": self.dataset, "split": self.split, "epochs": 12}


@dataclass
class SupernetAccuracy:
    """Accuracy of a sub-network of a trained supernet, evaluated once and cached."""

    checkpoint: Path
    checkpoint_sha256: str
    cache_url: str
    batch_size: int = 256
    device: str = "auto"
    _cache: AccuracyCache | None = field(default=None, repr=False)
    _known: dict[str, CachedAccuracy] = field(default_factory=dict, repr=False)
    evaluated: int = 0

    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        """Evaluation settings that change the number: split, sizes, batch size, precision."""
        return {"split": "validation", "batch_size": self.batch_size, "bn": "recalibrated",
                "amp": "bf16-on-cuda", "evaluator": "nas.evaluation.evaluate_arch/1"}

    def cache(self) -> AccuracyCache:
        if self._cache is None:
            self._cache = AccuracyCache(self.cache_url, self.checkpoint_sha256, self.settings)
            self._known = self._cache.load_all()
        return self._cache

    def evaluate(self, arch: Any) -> tuple[float, dict[str, Any]]:
        return self.evaluate_many([arch])[0]

    def evaluate_many(self, archs: Sequence[Any]) -> list[tuple[float, dict[str, Any]]]:
        """Cached archs from memory (the whole cache is read once, on first use); a miss is
        looked up again (another worker may have evaluated it since), else evaluated and
        stored at once, so an interrupted batch keeps what it evaluated."""
        cache = self.cache()
        out = []
        for arch in archs:
            key = self._space_key(arch)
            hit = self._known.get(key) or cache.get(key)
            if hit is None:
                hit = self._evaluate(arch)
                cache.put(key, hit)
                self.evaluated += 1
            self._known[key] = hit
            out.append((hit.accuracy, {"loss": hit.loss, "samples": hit.samples}))
        return out

    def _space_key(self, arch: Any) -> str:
        import json

        return json.dumps(arch.to_json(), sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def _evaluator(self) -> Any:
        import torch

        from nas.data import EvalBatches, Normalizer
        from nas.training import load_trained

        trained = load_trained(self.checkpoint, self.device)
        if trained.checkpoint.meta.get("sha256") != self.checkpoint_sha256:
            raise EdgenasError(f"checkpoint {self.checkpoint} changed while searching; restart the search")
        splits = trained.splits
        norm = Normalizer(splits.mean, splits.std, trained.device, trained.device.type == "cuda")
        workers = trained.config.data.workers
        calibration = EvalBatches(splits.calibration, norm, self.batch_size, splits.image_size, workers)
        validation = EvalBatches(splits.validation, norm, self.batch_size, splits.image_size, workers)
        amp = torch.bfloat16 if trained.device.type == "cuda" else None
        return trained, calibration, validation, amp

    def _evaluate(self, arch: Any) -> CachedAccuracy:
        from nas.evaluation import evaluate_arch

        trained, calibration, validation, amp = self._evaluator
        result = evaluate_arch(trained.supernet, arch, calibration, validation, amp)
        return CachedAccuracy(result.accuracy, result.loss, result.samples)

    def describe(self) -> dict[str, Any]:
        return {"kind": "supernet", "checkpoint_sha256": self.checkpoint_sha256, "settings": self.settings}
