"""FewShotLatencyRegressor on real NAS-Bench-201 latencies (held-out devices)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from latency_predictors.fewshot import FewShotLatencyRegressor
from latency_predictors.fewshot_adapter import arch_features, make_regressor
from latency_predictors.nb201_table import load_nb201_latency
from search_spaces.nb201 import NB201Space


@pytest.fixture(scope="module")
def data() -> dict:
    table = load_nb201_latency()
    space = NB201Space()
    archs = space.enumerate()
    return {
        "table": table,
        "counts": np.array([a.op_counts() for a in archs], dtype=float),
        "features": arch_features(archs),
        "flops": np.array([space.flops(a) for a in archs], dtype=float),
        "connected": np.array([i for i, a in enumerate(archs) if a.connected]),
    }


def _held_out(n: int, rows: np.ndarray) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    mask[rows] = False
    return mask


@pytest.mark.parametrize("device", ["samsung_s7", "1080ti_1", "gold_6240"])
def test_additive_beats_flops_with_ten_samples(data: dict, device: str) -> None:
    """Ten designed samples on a held-out device rank and size cells better than FLOPs."""
    table = data["table"]
    y = table.column(device)
    X = np.column_stack([table.matrix(exclude=table.related(device)), data["counts"]])
    reg = FewShotLatencyRegressor(n_arch_features=4, random_state=0)
    rows = data["connected"][reg.select(X[data["connected"]], 10)]
    pred = reg.fit(X[rows], y[rows]).predict(X)
    held = _held_out(len(y), rows)
    flops = data["flops"]
    flops_pred = flops * np.exp(np.mean(np.log(y[rows] / flops[rows])))
    rho = stats.spearmanr(pred[held], y[held]).statistic
    rho_flops = stats.spearmanr(flops_pred[held], y[held]).statistic
    err = np.abs(pred[held] / y[held] - 1)
    err_flops = np.abs(flops_pred[held] / y[held] - 1)
    assert rho > rho_flops and rho > 0.9
    assert np.mean(err <= 0.1) > np.mean(err_flops <= 0.1)


def test_pixel3_drops_dead_code(data: dict) -> None:
    """pixel3 (a mobile runtime) skips edges whose result never reaches the output: with
    ten designed samples the production model finds that, and ranks far better than op
    counts alone (0.905 Spearman before)."""
    table = data["table"]
    y = table.column("pixel3")
    X = np.column_stack([table.matrix(exclude=table.related("pixel3")), data["features"]])
    reg = make_regressor(8, random_state=0)
    rows = data["connected"][reg.select(X[data["connected"]], 10)]
    pred = reg.fit(X[rows], y[rows]).predict(X)
    held = _held_out(len(y), rows)
    counts_only = FewShotLatencyRegressor(n_arch_features=4, rel_noise=None, resolution=None, random_state=0)
    X4 = np.column_stack([table.matrix(exclude=table.related("pixel3")), data["counts"]])
    rows4 = data["connected"][counts_only.select(X4[data["connected"]], 10)]
    pred4 = counts_only.fit(X4[rows4], y[rows4]).predict(X4)
    rho = stats.spearmanr(pred[held], y[held]).statistic
    assert reg.dead_code_ == "removed" and rho > 0.95
    assert rho > stats.spearmanr(pred4[_held_out(len(y), rows4)], y[_held_out(len(y), rows4)]).statistic + 0.03


@pytest.mark.parametrize("truth", ["kept", "removed"])
def test_dead_code_hypothesis_is_chosen_from_the_samples(data: dict, truth: str) -> None:
    """Noise-free synthetic devices, one running dead edges and one dropping them: the
    leave-one-out choice finds which, and forcing the other hypothesis predicts worse."""
    F = data["features"][data["connected"]]
    cost = F[:, :4] - (F[:, 4:] if truth == "removed" else 0.0)
    y = 1.0 + cost @ np.array([0.2, 1.0, 3.0, 0.7])
    reg = FewShotLatencyRegressor(n_arch_features=8, n_dead_features=4, random_state=0)
    rows = reg.select(F, 12)
    pred = reg.fit(F[rows], y[rows]).predict(F)
    assert reg.dead_code_ == truth
    np.testing.assert_allclose(pred, y, rtol=1e-6)
    other = "kept" if truth == "removed" else "removed"
    forced = clone(reg).set_params(dead_code=other).fit(F[rows], y[rows])
    assert forced.dead_code_ == other and np.abs(forced.predict(F) / y - 1).mean() > 0.01
    too_few = clone(reg).fit(F[rows[:5]], y[rows[:5]])  # 5 samples, 5 coefficients: cannot tell
    assert too_few.dead_code_ == "kept"


def test_whole_millisecond_readings_are_fitted_as_rounded(data: dict) -> None:
    """A device reporting whole ms (true 0.3-12 ms): weighting each reading by its rounding
    error, not only by relative noise, predicts the true latencies better."""
    F = data["counts"][data["connected"]]
    true_ms = 0.2 + F @ np.array([0.1, 0.6, 2.0, 0.4])
    readings = np.maximum(np.round(true_ms), 1.0)
    errors = {}
    for resolution in ("auto", None):
        per_seed = []
        for seed in range(5):
            reg = FewShotLatencyRegressor(n_arch_features=4, resolution=resolution, random_state=seed)
            rows = reg.select(F, 20)
            reg.fit(F[rows], readings[rows])
            per_seed.append(np.abs(reg.predict(F) / true_ms - 1).mean())
        errors[resolution] = np.mean(per_seed)
        assert reg.resolution_ == (1.0 if resolution == "auto" else 0.0)
    assert errors["auto"] < 0.8 * errors[None]
    reg = FewShotLatencyRegressor(n_arch_features=4).fit(F[:20], true_ms[:20])
    assert reg.resolution_ == 0.0  # continuous readings carry no rounding term


def test_transfer_from_other_devices(data: dict) -> None:
    """Reference devices alone (strict: no sibling batch sizes) predict a held-out GPU."""
    table = data["table"]
    y = table.column("titanx_32")
    X = table.matrix(exclude=table.related("titanx_32"))
    reg = FewShotLatencyRegressor(random_state=1)
    rows = reg.select(X, 10)
    pred = reg.fit(X[rows], y[rows]).predict(X)
    held = _held_out(len(y), rows)
    assert reg.method_ == "transfer" and np.all(reg.coef_ >= 0)
    assert stats.spearmanr(pred[held], y[held]).statistic > 0.9


def test_estimator_contract(data: dict) -> None:
    reg = FewShotLatencyRegressor(n_arch_features=4, alpha=0.0)
    assert reg.get_params()["alpha"] == 0.0 and not hasattr(reg, "coef_")
    with pytest.raises(NotFittedError):
        reg.predict(data["counts"][:3])
    X = np.column_stack([np.ones(len(data["counts"])), data["counts"]])[:50]
    y = 1.0 + X[:, 1:] @ np.array([0.5, 2.0, 3.0, 1.0])
    fitted = clone(reg).fit(X, y)
    assert fitted is not reg and fitted.method_ == "additive"
    np.testing.assert_allclose(fitted.coef_, [0.5, 2.0, 3.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(fitted.predict(X), y, rtol=1e-6)
    ref = 1.0 + np.arange(50, dtype=float)[:, None]
    rows = FewShotLatencyRegressor(random_state=3).select(ref, 5)
    assert len(set(rows.tolist())) == 5 and {0, 49} <= set(rows.tolist())  # the design spans the range


@pytest.mark.parametrize(
    "kwargs, X, y, match",
    [
        ({}, np.ones((4, 2)), [1.0, 2.0, -1.0, 3.0], "positive"),
        ({}, np.ones((4, 2)), [1.0, 2.0], "rows"),
        ({}, np.ones(4), [1.0] * 4, "2-D"),
        ({"n_arch_features": 3}, np.ones((4, 2)), [1.0] * 4, "n_arch_features"),
        ({"method": "magic"}, np.ones((4, 2)), [1.0] * 4, "method"),
        ({"method": "additive"}, np.ones((4, 2)), [1.0] * 4, "arch cost"),
        ({}, -np.ones((4, 2)), [1.0] * 4, "reference latencies"),
        ({"n_arch_features": 2, "n_dead_features": 2}, np.ones((4, 2)), [1.0] * 4, "n_dead_features"),
        ({"n_arch_features": 2, "n_dead_features": 1, "dead_code": "gone"}, np.ones((4, 2)), [1.0] * 4, "dead_code"),
        ({"n_arch_features": 2, "resolution": "coarse"}, np.ones((4, 2)), [1.0] * 4, "resolution"),
        ({"n_arch_features": 2, "resolution": -1.0}, np.ones((4, 2)), [1.0] * 4, "resolution"),
    ],
)
def test_bad_input_is_one_line_value_error(kwargs: dict, X: object, y: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        FewShotLatencyRegressor(**kwargs).fit(X, y)
    assert "\n" not in str(info.value)
