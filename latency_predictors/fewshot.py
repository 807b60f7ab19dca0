"""Few-shot latency of a new device: a predictor from 5-50 measurements on that device.

What is already known is used two ways, and the estimator picks by what ``X`` holds:

* **additive** (arch cost features given): a network's latency is close to a sum of
  per-operation costs, so ``latency = b + sum_j theta_j * f_j`` with ``f`` per-arch cost
  features (for ``nb201``: how many edges carry each op, :meth:`NB201Arch.op_counts`) is
  fitted by weighted least squares, and :meth:`FewShotLatencyRegressor.select` picks which
  archs to measure by a greedy D-optimal design on those features (the spread of the
  design decides how well the few coefficients are pinned down; it never looks at the
  target device). Three things make it fit the way devices measure:

  - *relative noise*: timing noise grows with the latency, and what matters to a user is
    the relative error, so each reading is weighted by the inverse of its variance
    ``(rel_noise * y)**2 + resolution**2 / 12``;
  - *rounded readings*: a device that reports whole milliseconds (``resolution="auto"``
    detects it: every reading a whole number) adds the rounding error, uniform over one
    step, to that variance, so a 3 ms reading (up to 17 % off) counts less than a 30 ms
    one instead of more;
  - *dead code*: with ``n_dead_features`` the arch features also say which part of the
    work never reaches the output (:meth:`NB201Arch.dead_op_counts`); some runtimes
    (mobile converters) drop that work, others run it. ``dead_code="auto"`` fits both
    hypotheses and keeps the one with the smaller leave-one-out error on the samples.

* **transfer** (reference latencies only): the new device as a non-negative mix of the
  reference devices plus an offset, ``latency = b + sum_k w_k * ref_k`` with ``w >= 0``
  (non-negative least squares), samples picked by the same design on the reference
  devices' standardised log latencies.

On NAS-Bench-201 (``experiments/bench/fewshot_nb201.py``, leave-one-device-out over 13
devices) the additive model with designed samples beats transfer from the other devices
at every sample count; the residuals of the op-count model are nearly uncorrelated
between devices (measurement noise, not shared structure), so adding the reference
block to it did not improve it, and in additive mode the reference columns are accepted
but not used.

Example::

    reg = FewShotLatencyRegressor(n_arch_features=8, n_dead_features=4)
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
DEAD_CODE = ("auto", "kept", "removed")


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
    n_dead_features:
        Of the arch features, how many trailing ones count the *dead* part of the first
        ``n_dead_features`` arch features (for ``nb201``: arch features
        ``op_counts() + dead_op_counts()``, ``n_dead_features=4``); ``0``: none given.
    dead_code:
        ``"kept"`` (the device runs dead work: cost follows the full counts),
        ``"removed"`` (it drops it: cost follows counts minus dead counts) or ``"auto"``
        (whichever has the smaller weighted leave-one-out error on the samples; ``"kept"``
        when there are too few samples to tell).
    method:
        ``"additive"`` (arch features), ``"transfer"`` (reference latencies) or ``"auto"``
        (additive when arch features are given, else transfer).
    alpha:
        Ridge penalty on the additive coefficients (keeps the solve defined when
        features are collinear on the samples); ``0`` is plain least squares.
    rel_noise:
        Relative timing noise assumed for the additive fit's weights (``0.05``: 5 %);
        ``None`` fits unweighted least squares on milliseconds.
    resolution:
        Step of the readings in ms (``1.0`` for a device that reports whole
        milliseconds), whose rounding error adds ``resolution**2 / 12`` to each reading's
        variance; ``"auto"``: ``1.0`` when every reading is a whole number (and there are
        at least 3), else ``0``; ``None``: ``0``.
    pool_size:
        :meth:`select` designs over at most this many candidates, drawn with
        ``random_state`` (``None`` or ``<= 0``: all candidates).
    random_state:
        Seed of :meth:`select`'s candidate pool (fitting itself is deterministic).
    """

    def __init__(
        self,
        n_arch_features: int = 0,
        n_dead_features: int = 0,
        dead_code: str = "auto",
        method: str = "auto",
        alpha: float = 1e-6,
        rel_noise: float | None = 0.05,
        resolution: float | str | None = "auto",
        pool_size: int | None = 3000,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_arch_features = n_arch_features
        self.n_dead_features = n_dead_features
        self.dead_code = dead_code
        self.method = method
        self.alpha = alpha
        self.rel_noise = rel_noise
        self.resolution = resolution
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
        n_dead = int(self.n_dead_features)
        if not 0 <= 2 * n_dead <= n_arch:
            raise ValueError(f"n_dead_features={n_dead} needs at least {2 * n_dead} arch features, got {n_arch}")
        if self.dead_code not in DEAD_CODE:
            raise ValueError(f"dead_code must be one of {list(DEAD_CODE)}, got {self.dead_code!r}")
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
        dead_code = "kept"
        if method == "additive":
            w = self._weights(y)
            candidates = {"kept": self._cost_features(F, "kept")}
            if int(self.n_dead_features) > 0 and self.dead_code != "kept":
                candidates["removed"] = self._cost_features(F, "removed")
                if self.dead_code == "removed":
                    del candidates["kept"]
            if len(candidates) > 1:  # enough samples to compare the hypotheses?
                p = candidates["kept"].shape[1] + 1
                if len(y) < p + 2:
                    del candidates["removed"]
            fits = {name: self._weighted_fit(G, y, w) for name, G in candidates.items()}
            dead_code = min(fits, key=lambda name: fits[name][1])
            theta = fits[dead_code][0]
            self.resolution_ = self._resolution(y)
        else:  # offset split into a positive and a negative part, so only w is constrained
            A = np.column_stack([np.ones(len(F)), -np.ones(len(F)), F])
            w, _ = nnls(A, y)
            theta = np.r_[w[0] - w[1], w[2:]]
            self.resolution_ = 0.0
        self.dead_code_ = dead_code
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
        if self.method_ == "additive":
            F = self._cost_features(F, self.dead_code_)
        return np.maximum(self.intercept_ + F @ self.coef_, self.floor_)

    # --- the additive fit ----------------------------------------------------------------------
    def _cost_features(self, F: np.ndarray, dead_code: str) -> np.ndarray:
        """Arch features as the cost model sees them: without the dead-count columns, and
        with the dead part subtracted when the device removes dead code."""
        n_dead = int(self.n_dead_features)
        if n_dead == 0:
            return F
        G = F[:, : F.shape[1] - n_dead].copy()
        if dead_code == "removed":
            G[:, :n_dead] -= F[:, F.shape[1] - n_dead :]
        return G

    def _resolution(self, y: np.ndarray) -> float:
        if self.resolution is None:
            return 0.0
        if isinstance(self.resolution, str):
            if self.resolution != "auto":
                raise ValueError(f"resolution must be a step in ms, 'auto' or None, got {self.resolution!r}")
            return 1.0 if len(y) >= 3 and np.all(np.abs(y - np.round(y)) < 1e-9) else 0.0
        step = float(self.resolution)
        if not step >= 0:
            raise ValueError(f"resolution must be >= 0 ms, got {self.resolution!r}")
        return step

    def _weights(self, y: np.ndarray) -> np.ndarray:
        """Inverse variance of each reading: relative timing noise plus rounding error."""
        if self.rel_noise is None:
            return np.ones_like(y)
        variance = (float(self.rel_noise) * y) ** 2 + self._resolution(y) ** 2 / 12.0
        return 1.0 / np.maximum(variance, np.finfo(float).tiny)

    def _weighted_fit(self, G: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
        """Ridge-regularised weighted least squares of ``y`` on ``[1, G]``: coefficients and
        the weighted mean squared leave-one-out residual (closed form via leverages)."""
        A = np.column_stack([np.ones(len(G)), G])
        penalty = np.full(A.shape[1], float(self.alpha))
        penalty[0] = 0.0
        sw = np.sqrt(w)
        As, ys = A * sw[:, None], y * sw
        inv = np.linalg.pinv(As.T @ As + np.diag(penalty))
        theta = inv @ (As.T @ ys)
        leverage = np.minimum(np.einsum("ij,jk,ik->i", As, inv, As), 1.0 - 1e-9)
        loo = (ys - As @ theta) / (1.0 - leverage)
        return theta, float(np.mean(loo**2))


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
