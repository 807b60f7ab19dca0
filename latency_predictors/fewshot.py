"""Few-shot latency of a new device: a predictor from 5-50 measurements on that device.

What is already known is used two ways, and the estimator picks by what ``X`` holds:

* **additive** (arch cost features given): a network's latency is close to a sum of
  per-operation costs, so ``latency = b + sum_j theta_j * f_j`` with ``f`` per-arch cost
  features (for ``nb201``: how many edges carry each op, :meth:`NB201Arch.op_counts`) is
  fitted by least squares, and :meth:`FewShotLatencyRegressor.select` picks which archs to
  measure by a greedy D-optimal design on those features (the spread of the design decides
  how well the few coefficients are pinned down; it never looks at the target device).
* **transfer** (reference latencies only): the new device as a non-negative mix of the
  reference devices plus an offset, ``latency = b + sum_k w_k * ref_k`` with ``w >= 0``
  (non-negative least squares), samples picked by the same design on the reference
  devices' standardised log latencies.

On NAS-Bench-201 (``experiments/bench/fewshot_nb201.py``, leave-one-device-out over 13
devices) the additive model with designed samples beats transfer from the other devices
at every sample count; adding the reference block to it (ridge-shrunk, any strength) did
not improve it, so in additive mode the reference columns are accepted but not used.

Example::

    reg = FewShotLatencyRegressor(n_arch_features=4)
    rows = reg.select(X_candidates, 10)             # which archs to measure
    reg.fit(X_candidates[rows], measured_ms)        # y: latency in ms on the new device
    predicted_ms = reg.predict(X_all)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

METHODS = ("auto", "additive", "transfer")


class FewShotLatencyRegressor(RegressorMixin, BaseEstimator):
    """Predict a new device's latency (ms) of architectures from a few measured ones.

    ``X`` has one row per architecture: first the architecture's measured latencies (ms,
    positive) on the *reference* devices, one column each (there may be none), then
    ``n_arch_features`` cost features of the architecture (for ``nb201``:
    ``NB201Arch.op_counts()``; there may be none). ``y`` is the latency in ms on the new
    device. Predictions are in ms.

    Parameters
    ----------
    n_arch_features:
        How many trailing columns of ``X`` are arch cost features.
    method:
        ``"additive"`` (arch features), ``"transfer"`` (reference latencies) or ``"auto"``
        (additive when arch features are given, else transfer).
    alpha:
        Ridge penalty on the additive coefficients (keeps the solve defined when
        features are collinear on the samples); ``0`` is plain least squares.
    pool_size:
        :meth:`select` designs over at most this many candidates, drawn with
        ``random_state`` (``None`` or ``<= 0``: all candidates).
    random_state:
        Seed of :meth:`select`'s candidate pool (fitting itself is deterministic).
    """

    def __init__(
        self,
        n_arch_features: int = 0,
        method: str = "auto",
        alpha: float = 1e-6,
        pool_size: int | None = 3000,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_arch_features = n_arch_features
        self.method = method
        self.alpha = alpha
        self.pool_size = pool_size
        self.random_state = random_state

    # --- which block does what -----------------------------------------------------------
    def _resolve(self, n_features: int) -> tuple[str, int]:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        n_arch = int(self.n_arch_features)
        if not 0 <= n_arch <= n_features:
            raise ValueError(f"n_arch_features={n_arch} but X has {n_features} columns")
        n_ref = n_features - n_arch
        method = self.method
        if method == "auto":
            method = "additive" if n_arch > 0 else "transfer"
        if method == "additive" and n_arch == 0:
            raise ValueError("method 'additive' needs n_arch_features > 0 arch cost columns in X")
        if method == "transfer" and n_ref == 0:
            raise ValueError("method 'transfer' needs reference-device latency columns in X")
        return method, n_ref

    def _features(self, X: np.ndarray, method: str, n_ref: int) -> np.ndarray:
        if method == "additive":
            return X[:, n_ref:]
        ref = X[:, :n_ref]
        if not np.all(ref > 0):
            raise ValueError("reference latencies (the first columns of X) must be positive ms")
        return ref

    # --- sampling design -------------------------------------------------------------------
    def select(self, X: Any, n_samples: int) -> np.ndarray:
        """Rows of ``X`` (candidate archs, same columns as for ``fit``) to measure.

        Greedy D-optimal design: each pick maximises the prediction variance of the
        linear model fitted so far, i.e. adds the most information about its
        coefficients. Uses only ``X`` (never the new device's latencies)."""
        X = _check_X(X)
        if not 1 <= n_samples <= len(X):
            raise ValueError(f"n_samples must be in 1..{len(X)}, got {n_samples}")
        method, n_ref = self._resolve(X.shape[1])
        F = self._features(X, method, n_ref)
        if method == "transfer":
            F = np.log(F)
        std = F.std(0)
        F = (F - F.mean(0)) / np.where(std > 0, std, 1.0)
        rng = np.random.RandomState(self.random_state) if not isinstance(
            self.random_state, np.random.RandomState
        ) else self.random_state
        cand = np.arange(len(X))
        if self.pool_size and self.pool_size > 0 and len(cand) > self.pool_size:
            cand = np.sort(rng.choice(cand, self.pool_size, replace=False))
        return cand[_d_optimal(np.column_stack([np.ones(len(cand)), F[cand]]), n_samples)]

    # --- estimator ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> FewShotLatencyRegressor:
        """Fit on measured archs: ``X`` as described in the class docstring, ``y`` in ms."""
        X = _check_X(X)
        y = np.asarray(y, dtype=float).ravel()
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} latencies")
        if X.shape[0] < 2:
            raise ValueError("need at least 2 measured archs to fit a few-shot predictor")
        if not np.all(np.isfinite(y)) or not np.all(y > 0):
            raise ValueError("latencies y must be positive, finite milliseconds")
        method, n_ref = self._resolve(X.shape[1])
        F = self._features(X, method, n_ref)
        if method == "additive":
            A = np.column_stack([np.ones(len(F)), F])
            penalty = np.full(A.shape[1], float(self.alpha))
            penalty[0] = 0.0
            theta = np.linalg.lstsq(
                np.vstack([A, np.diag(np.sqrt(penalty))]), np.r_[y, np.zeros(A.shape[1])], rcond=None
            )[0]
        else:  # offset split into a positive and a negative part, so only w is constrained
            A = np.column_stack([np.ones(len(F)), -np.ones(len(F)), F])
            w, _ = nnls(A, y)
            theta = np.r_[w[0] - w[1], w[2:]]
        self.method_ = method
        self.n_reference_ = n_ref
        self.n_features_in_ = X.shape[1]
        self.intercept_ = float(theta[0])
        self.coef_ = theta[1:]
        self.floor_ = 0.1 * float(y.min())
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Latency in ms of each row's arch on the new device (floored at a tenth of the
        smallest measured latency, so extrapolation never gives a non-positive time)."""
        check_is_fitted(self, "coef_")
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns, the regressor was fitted on {self.n_features_in_}")
        F = self._features(X, self.method_, self.n_reference_)
        return np.maximum(self.intercept_ + F @ self.coef_, self.floor_)


def _check_X(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"X must be 2-D (archs x features), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X has NaN or infinite values")
    return X


def _d_optimal(F: np.ndarray, n: int) -> np.ndarray:
    """Greedy D-optimal rows of ``F``: Sherman-Morrison updates of the inverse information
    matrix (started from a weak ridge prior), never picking a row twice."""
    inv = np.eye(F.shape[1]) * 1e3
    picked: list[int] = []
    for _ in range(n):
        gain = np.einsum("ij,jk,ik->i", F, inv, F)
        gain[picked] = -np.inf
        i = int(np.argmax(gain))
        picked.append(i)
        v = inv @ F[i]
        inv -= np.outer(v, v) / (1.0 + F[i] @ v)
    return np.array(picked)
