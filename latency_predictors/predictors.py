"""Cost predictors as scikit-learn estimators: block-level with a whole-network correction,
and whole-network.

* :class:`RegressorSelector` picks its regressor (gradient boosting, random forest,
  ridge, k-nearest neighbours) by cross-validated relative error, fitting in log space
  (latencies span orders of magnitude; relative error is what matters).
* :class:`BlockLatencyRegressor` predicts one block from its :class:`BlockSpec`. Blocks
  that were measured are looked up exactly (``memorize``), the rest predicted.
* :class:`BlockSumRegressor` predicts a whole network as the sum of its blocks'
  predictions, corrected by a model learned on networks measured end to end (blocks do
  not add up exactly: fusion across blocks, per-call overheads, caches): a ratio, or a
  linear model where enough networks support one (chosen by leave-one-out error).
* :class:`WholeNetworkRegressor` predicts a network from aggregate features only: the
  model for devices measured elsewhere, where only whole networks are known.

Every estimator stores its parameters in ``__init__``, learns attributes ending in ``_``
in ``fit`` (which returns ``self``) and is refitted from stored measurements rather than
pickled (see :mod:`latency_predictors.device_profile`).

Example::

    block_model = BlockLatencyRegressor(random_state=0).fit(specs, block_ms)
    model = BlockSumRegressor(random_state=0).fit(nets, net_ms, block_X=specs, block_y=block_ms)
    model.predict([space.blocks(arch)])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import HuberRegressor, Ridge
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from latency_predictors.features import BlockFeaturizer, NetworkFeaturizer
from search_spaces import BlockSpec

CANDIDATES = ("gbr", "rf", "ridge", "knn")
SELECTION_SAMPLES = 2000
"""Default cap on the samples :class:`RegressorSelector` compares its candidates on."""


def make_regressor(name: str, random_state: int | None = None) -> Any:
    """A fresh regressor by short name (used by :class:`RegressorSelector`)."""
    if name == "gbr":
        return GradientBoostingRegressor(
            n_estimators=150, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=random_state
        )
    if name == "rf":
        return RandomForestRegressor(n_estimators=100, min_samples_leaf=1, random_state=random_state)
    if name == "ridge":
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    if name == "knn":
        return make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=3, weights="distance"))
    raise ValueError(f"unknown regressor {name!r}; use one of {CANDIDATES}")


class RegressorSelector(RegressorMixin, BaseEstimator):
    """Fits each candidate on ``log(y)``, keeps the one with the lowest cross-validated
    mean relative error, refits it on all the data.

    With more than ``selection_samples`` samples the candidates are compared on a random
    subset of that many (drawn with ``random_state``), and only the winner is fitted on
    all of them: comparing four regressors by K-fold on 100,000 samples costs minutes
    (k-nearest neighbours grows with the square of the samples), while the ranking is
    settled long before. ``None`` compares on all samples.

    Attributes: ``cv_mape_`` (candidate → cross-validated MAPE %), ``best_`` (its name),
    ``n_selection_samples_`` (how many samples the candidates were compared on),
    ``estimator_`` (the refitted regressor).
    """

    def __init__(
        self,
        candidates: Sequence[str] = CANDIDATES,
        cv: int = 5,
        random_state: int | None = 0,
        selection_samples: int | None = SELECTION_SAMPLES,
    ):
        self.candidates = candidates
        self.cv = cv
        self.random_state = random_state
        self.selection_samples = selection_samples

    def fit(self, X: Any, y: Any) -> RegressorSelector:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(X) != len(y) or len(y) == 0:
            raise ValueError(f"need as many targets as samples (and at least one), got {len(X)} and {len(y)}")
        if np.any(y <= 0):
            raise ValueError("costs must be positive to fit in log space")
        log_y = np.log(y)
        folds = min(self.cv, len(y) // 2)  # every training fold keeps at least two samples
        self.cv_mape_: dict[str, float] = {}
        if folds >= 2:
            split = KFold(folds, shuffle=True, random_state=self.random_state)
            sel_X, sel_log_y, sel_y = X, log_y, y
            if self.selection_samples is not None and len(y) > self.selection_samples:
                rng = np.random.default_rng(self.random_state)
                keep = np.sort(rng.choice(len(y), size=self.selection_samples, replace=False))
                sel_X, sel_log_y, sel_y = X[keep], log_y[keep], y[keep]
            self.n_selection_samples_ = len(sel_y)
            for name in self.candidates:
                try:
                    pred = cross_val_predict(make_regressor(name, self.random_state), sel_X, sel_log_y, cv=split)
                except (ValueError, ZeroDivisionError):  # a candidate that cannot fit so few samples
                    self.cv_mape_[name] = float("inf")
                    continue
                self.cv_mape_[name] = float(100 * np.mean(np.abs(np.exp(pred) - sel_y) / sel_y))
            self.best_ = min(self.cv_mape_, key=self.cv_mape_.__getitem__)
        else:
            self.n_selection_samples_ = 0
            self.best_ = "ridge" if "ridge" in self.candidates else self.candidates[0]
        self.estimator_ = make_regressor(self.best_, self.random_state).fit(X, log_y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return np.exp(self.estimator_.predict(np.asarray(X, dtype=np.float64)))


class BlockLatencyRegressor(RegressorMixin, BaseEstimator):
    """Cost of one block from its :class:`BlockSpec` (``X`` is a list of specs).

    With ``memorize`` a block measured during ``fit`` is predicted as its measured value
    (the mean if measured more than once); others go through the selected regressor.
    """

    def __init__(
        self, candidates: Sequence[str] = CANDIDATES, memorize: bool = True, cv: int = 5, random_state: int | None = 0
    ):
        self.candidates = candidates
        self.memorize = memorize
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: Sequence[BlockSpec], y: Any) -> BlockLatencyRegressor:
        y = np.asarray(y, dtype=np.float64)
        if len(X) != len(y) or not len(y):
            raise ValueError(f"need one cost per block (and at least one), got {len(X)} and {len(y)}")
        self.featurizer_ = BlockFeaturizer().fit(X)
        self.regressor_ = RegressorSelector(self.candidates, self.cv, self.random_state).fit(
            self.featurizer_.transform(X), y
        )
        sums: dict[str, list[float]] = {}
        for b, v in zip(X, y):
            sums.setdefault(b.key(), []).append(float(v))
        self.table_ = {k: float(np.mean(v)) for k, v in sums.items()} if self.memorize else {}
        return self

    def predict(self, X: Sequence[BlockSpec]) -> np.ndarray:
        check_is_fitted(self, "regressor_")
        if not len(X):
            return np.zeros(0)
        # networks repeat a few blocks many times (an nb201 net: 76 blocks, 16 distinct):
        # featurise and look up each distinct block once
        # (by identity: spaces hand out the same BlockSpec object for a repeated block, and
        # two equal objects are merely featurised twice)
        index: dict[int, int] = {}
        unique: list[BlockSpec] = []
        rows = np.empty(len(X), dtype=np.intp)
        for j, b in enumerate(X):
            i = index.get(id(b))
            if i is None:
                i = index[id(b)] = len(unique)
                unique.append(b)
            rows[j] = i
        out = self.regressor_.predict(self.featurizer_.transform(unique))
        for i, b in enumerate(unique):
            known = self.table_.get(b.key())
            if known is not None:
                out[i] = known
        return out[rows]


CORRECTIONS = ("ratio", "affine", "affine_blocks")
"""Whole-network corrections of a block sum ``s`` of a network of ``n`` blocks, simplest
first: ``c x s``; ``a x s + b``; ``a x s + d x n + b`` (robust Huber fits)."""
_MIN_NETWORKS = {"ratio": 1, "affine": 5, "affine_blocks": 8}
"""Networks a correction needs before it is a candidate: more parameters than networks
to check them on fit the noise (a 3-parameter correction fitted on 5 networks put held-out
networks 20 % off where a single ratio put them within 10 %)."""


class _ScaledHuber:
    """A robust linear fit on standardised inputs and a target divided by its median:
    the same line as a plain :class:`HuberRegressor`, found in a few L-BFGS steps instead
    of hundreds (a decode network's sub-millisecond sums against a prefill's 100 ms made the
    unscaled fit take 0.16 s; leave-one-out selection runs it dozens of times per fit)."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _ScaledHuber:
        self.scale_ = float(np.median(np.abs(y))) or 1.0
        self.model_ = make_pipeline(StandardScaler(), HuberRegressor(max_iter=1000)).fit(X, y / self.scale_)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X) * self.scale_


def _fit_correction(kind: str, sums: np.ndarray, counts: np.ndarray, y: np.ndarray) -> Any:
    if kind == "ratio":
        return float(np.median(y / sums))
    design = sums[:, None] if kind == "affine" else np.column_stack([sums, counts])
    return _ScaledHuber().fit(design, y)


def _apply_correction(kind: str, model: Any, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if kind == "ratio":
        return model * sums
    design = sums[:, None] if kind == "affine" else np.column_stack([sums, counts])
    corrected = model.predict(design)
    return np.where(corrected > 0, corrected, sums)  # a linear correction must not turn a cost negative


class BlockSumRegressor(RegressorMixin, BaseEstimator):
    """Whole-network cost = corrected sum of block predictions.

    ``X`` is a list of networks, each the list of its :class:`BlockSpec`; ``fit`` needs
    the block measurements as ``block_X``/``block_y`` and the networks measured end to
    end as ``X``/``y``. The correction is chosen among :data:`CORRECTIONS` with enough
    networks (a single ratio from one network on, an affine model of the sum from 5, one
    with the block count too from 8) by leave-one-out relative error over the networks,
    with the one-standard-error rule: the simplest whose error is within one standard
    error of the lowest (with a handful of networks, the lowest is often the one that
    fits their noise). Without networks it is the identity.

    Attributes: ``correction_kind_`` (``"identity"`` or a :data:`CORRECTIONS` name),
    ``correction_`` (its fitted parameters), ``correction_loo_mape_`` (kind → leave-one-out
    MAPE %, where it could be computed).
    """

    def __init__(
        self, candidates: Sequence[str] = CANDIDATES, memorize: bool = True, cv: int = 5, random_state: int | None = 0
    ):
        self.candidates = candidates
        self.memorize = memorize
        self.cv = cv
        self.random_state = random_state

    def fit(
        self, X: Sequence[Sequence[BlockSpec]], y: Any, *, block_X: Sequence[BlockSpec], block_y: Any
    ) -> BlockSumRegressor:
        self.block_model_ = BlockLatencyRegressor(self.candidates, self.memorize, self.cv, self.random_state)
        self.block_model_.fit(block_X, block_y)
        y = np.asarray(y, dtype=np.float64)
        self.correction_loo_mape_: dict[str, float] = {}
        if not len(X):
            self.correction_kind_, self.correction_ = "identity", None
            return self
        sums, counts = self.block_sums(X), np.asarray([len(blocks) for blocks in X], dtype=np.float64)
        allowed = [k for k in CORRECTIONS if len(X) >= _MIN_NETWORKS[k]]
        if len(X) >= 2:
            errors: dict[str, np.ndarray] = {}
            for kind in allowed:
                loo = []
                for i in range(len(X)):
                    keep = np.arange(len(X)) != i
                    model = _fit_correction(kind, sums[keep], counts[keep], y[keep])
                    pred = _apply_correction(kind, model, sums[i : i + 1], counts[i : i + 1])[0]
                    loo.append(abs(pred - y[i]) / y[i])
                errors[kind] = np.asarray(loo)
                self.correction_loo_mape_[kind] = float(100 * np.mean(loo))
            best = min(errors, key=lambda k: errors[k].mean())
            limit = errors[best].mean() + errors[best].std(ddof=1) / np.sqrt(len(X))
            self.correction_kind_ = next(k for k in allowed if errors[k].mean() <= limit)  # simplest first
        else:
            self.correction_kind_ = "ratio"
        self.correction_ = _fit_correction(self.correction_kind_, sums, counts, y)
        return self

    def block_sums(self, X: Sequence[Sequence[BlockSpec]]) -> np.ndarray:
        """Uncorrected sum of block predictions per network."""
        check_is_fitted(self, "block_model_")
        flat = [b for blocks in X for b in blocks]
        preds = self.block_model_.predict(flat)
        bounds = np.cumsum([0] + [len(blocks) for blocks in X])
        sums = np.zeros(len(X))
        full = bounds[:-1] < bounds[1:]  # a network without blocks sums to 0
        if len(flat):
            sums[full] = np.add.reduceat(preds, bounds[:-1][full])
        return sums

    def predict(self, X: Sequence[Sequence[BlockSpec]]) -> np.ndarray:
        check_is_fitted(self, "block_model_")
        return self.correct(self.block_sums(X), [len(blocks) for blocks in X])

    def correct(self, sums: Any, counts: Any) -> np.ndarray:
        """The whole-network correction applied to networks given by their uncorrected
        block sums and block counts (what :meth:`predict` does after summing): lets a
        caller that already has per-block predictions price many block lists cheaply."""
        check_is_fitted(self, "block_model_")
        sums = np.asarray(sums, dtype=np.float64)
        if self.correction_kind_ == "identity" or not len(sums):
            return sums
        return _apply_correction(self.correction_kind_, self.correction_, sums, np.asarray(counts, dtype=np.float64))


class WholeNetworkRegressor(RegressorMixin, BaseEstimator):
    """Whole-network cost from aggregate features of its blocks (``X``: list of networks)."""

    def __init__(self, candidates: Sequence[str] = CANDIDATES, cv: int = 5, random_state: int | None = 0):
        self.candidates = candidates
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: Sequence[Sequence[BlockSpec]], y: Any) -> WholeNetworkRegressor:
        self.featurizer_ = NetworkFeaturizer().fit(X)
        self.regressor_ = RegressorSelector(self.candidates, self.cv, self.random_state).fit(
            self.featurizer_.transform(X), y
        )
        return self

    def predict(self, X: Sequence[Sequence[BlockSpec]]) -> np.ndarray:
        check_is_fitted(self, "regressor_")
        return self.regressor_.predict(self.featurizer_.transform(X))
