"""FewShotLatencyRegressor on real NAS-Bench-201 latencies (held-out devices)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from latency_predictors.fewshot import FewShotLatencyRegressor
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
    ],
)
def test_bad_input_is_one_line_value_error(kwargs: dict, X: object, y: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        FewShotLatencyRegressor(**kwargs).fit(X, y)
    assert "\n" not in str(info.value)
