"""Where a trial's accuracy comes from: a tabular benchmark or the supernet (cached).

* :class:`TabularAccuracy` (``nb201``): the 12-epoch NAS-Bench-201 accuracy table; the
  search optimises the validation accuracy and records the test accuracy beside it.
* :class:`SupernetAccuracy` (``mbv3``, ``gpt`` and any space with a supernet): the arch
  is activated in the trained supernet and scored on the validation split by the space's
  task (:mod:`nas.tasks`), through the :class:`~nas.search.cache.AccuracyCache`. Image
  spaces: top-1 accuracy (%) after BN recalibration on the calibration split
  (:func:`nas.evaluation.evaluate_arch`). Language models (gpt): the objective is the
  **negative** validation loss in nats per token (higher is better, like accuracy; the
  study's ``accuracy`` objective is maximised either way), and each trial records the
  loss, perplexity and next-token accuracy beside it. The supernet is loaded on first
  use, so a warm cache needs no model at all.
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
    def _meta(self) -> dict[str, Any]:
        from nas.training import checkpoint_meta

        return checkpoint_meta(self.checkpoint)

    @functools.cached_property
    def task(self) -> Any:
        """The task class of the checkpoint's space (from its metadata: no weights are read)."""
        from nas.tasks import task_type

        name = (self._meta.get("space_config") or {}).get("name")
        if not isinstance(name, str):
            raise EdgenasError(f"{self.checkpoint}: metadata is incomplete or from another version (no space name)")
        return task_type(name)

    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        """Evaluation settings that change the number: split, sizes, batch size, precision."""
        data = self._meta.get("data")
        return self.task.eval_settings(self.batch_size, data if isinstance(data, dict) else {})

    def cache(self) -> AccuracyCache:
        if self._cache is None:
            self._cache = AccuracyCache(self.cache_url, self.checkpoint_sha256, self.settings)
            self._known = self._cache.load_all()
        return self._cache

    def evaluate(self, arch: Any) -> tuple[float, dict[str, Any]]:
        """The search's objective for ``arch`` (higher is better) and what a trial records beside it."""
        return self.evaluate_many([arch])[0]

    def evaluate_many(self, archs: Sequence[Any]) -> list[tuple[float, dict[str, Any]]]:
        """Cached archs from memory (the whole cache is read once, on first use); a miss is
        looked up again (another worker may have evaluated it since), else evaluated and
        stored at once, so an interrupted batch keeps what it evaluated."""
        from nas.evaluation import EvalResult

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
            result = EvalResult(hit.accuracy, hit.loss, hit.samples)
            out.append((self.task.objective(result), self.task.attrs(result)))
        return out

    def _space_key(self, arch: Any) -> str:
        import json

        return json.dumps(arch.to_json(), sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def _evaluator(self) -> Any:
        import torch

        from nas.training import load_trained

        trained = load_trained(self.checkpoint, self.device)
        if trained.checkpoint.meta.get("sha256") != self.checkpoint_sha256:
            raise EdgenasError(f"checkpoint {self.checkpoint} changed while searching; restart the search")
        amp = torch.bfloat16 if trained.device.type == "cuda" else None
        return trained, trained.task.evaluator("validation", self.batch_size, trained.device, amp)

    def _evaluate(self, arch: Any) -> CachedAccuracy:
        trained, evaluate = self._evaluator
        result = evaluate(trained.supernet, arch)
        return CachedAccuracy(result.accuracy, result.loss, result.samples)

    def describe(self) -> dict[str, Any]:
        return {"kind": "supernet", "checkpoint_sha256": self.checkpoint_sha256, "settings": self.settings}
