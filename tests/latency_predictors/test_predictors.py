"""Predictors: sklearn conventions, regressor selection, block lookup, the block-sum correction."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from latency_predictors.metrics import validation_figures
from latency_predictors.predictors import (
    BlockLatencyRegressor,
    BlockSumRegressor,
    RegressorSelector,
    WholeNetworkRegressor,
)
from search_spaces import get_space

SPACE = get_space("mbv3", preset="small")


def block_cost(b) -> float:
    """A deterministic roofline-like cost, so the tests know the truth exactly."""
    return 0.02 + b.flops / 2e8 + b.memory_traffic / 5e7


def nets(n: int, seed: int):
    rng = random.Random(seed)
    return [SPACE.blocks(SPACE.sample(rng)) for _ in range(n)]


def test_estimators_follow_sklearn_conventions():
    for est in (RegressorSelector(), BlockLatencyRegressor(), BlockSumRegressor(), WholeNetworkRegressor()):
        params = est.get_params()
        assert clone(est).get_params() == params
        with pytest.raises(NotFittedError):
            est.predict([[1.0]] if isinstance(est, RegressorSelector) else [])


def test_selector_picks_by_cross_validation_and_fits_log_space():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 10, size=(80, 3))
    y = np.exp(0.3 * X[:, 0] - 0.1 * X[:, 1])  # log-linear: ridge should win
    sel = RegressorSelector(random_state=0).fit(X, y)
    assert set(sel.cv_mape_) == {"gbr", "rf", "ridge", "knn"}
    assert sel.best_ == "ridge" == min(sel.cv_mape_, key=sel.cv_mape_.get)
    assert np.allclose(sel.predict(X), y, rtol=0.02)
    with pytest.raises(ValueError, match="positive"):
        RegressorSelector().fit(X, -y)


def test_block_model_memorizes_measured_blocks_and_generalizes():
    train = [b for blocks in nets(30, 0) for b in blocks]
    y = [block_cost(b) for b in train]
    model = BlockLatencyRegressor(cv=3, random_state=0).fit(train, y)
    assert np.allclose(model.predict(train), y)  # exact for measured blocks
    unseen = [b for blocks in nets(40, 1) for b in blocks if b.key() not in model.table_]
    truth = np.array([block_cost(b) for b in unseen])
    assert validation_figures(truth, model.predict(unseen))["mape_pct"] < 15


def test_block_sum_learns_the_whole_network_correction():
    blocks = [b for blocks in nets(30, 0) for b in blocks]
    block_y = [block_cost(b) for b in blocks]

    def whole(net):  # fusion makes networks cheaper than their blocks, plus a fixed launch cost
        return 0.8 * sum(block_cost(b) for b in net) + 0.01 * len(net) + 0.1

    train, test = nets(15, 2), nets(30, 3)
    model = BlockSumRegressor(cv=3, random_state=0).fit(train, [whole(n) for n in train], block_X=blocks, block_y=block_y)
    figures = validation_figures([whole(n) for n in test], model.predict(test))
    uncorrected = validation_figures([whole(n) for n in test], model.block_sums(test))
    assert figures["within_10pct"] >= 0.95 and figures["spearman"] > 0.95
    assert figures["mape_pct"] < uncorrected["mape_pct"] / 3
    # 15 networks of an exact 3-term law: the 3-term correction wins leave-one-out
    assert model.correction_kind_ == "affine_blocks" and set(model.correction_loo_mape_) == {
        "ratio", "affine", "affine_blocks"}


def test_few_noisy_networks_get_a_single_ratio():
    """Five networks at 1.15x their blocks with 4 % measurement noise: a 3-parameter fit
    would chase the noise; the ratio predicts held-out networks within 10 %."""
    blocks = [b for blocks in nets(30, 0) for b in blocks]
    block_y = [block_cost(b) for b in blocks]
    rng = np.random.default_rng(0)

    def whole(net, noise=0.0):
        return 1.15 * sum(block_cost(b) for b in net) * (1 + noise)

    train, test = nets(5, 2), nets(30, 3)
    y = [whole(n, rng.normal(0, 0.04)) for n in train]
    model = BlockSumRegressor(cv=3, random_state=0).fit(train, y, block_X=blocks, block_y=block_y)
    assert model.correction_kind_ == "ratio" and set(model.correction_loo_mape_) == {"ratio", "affine"}
    assert model.correction_ == pytest.approx(1.15, rel=0.05)
    assert validation_figures([whole(n) for n in test], model.predict(test))["within_10pct"] == 1.0
    one = BlockSumRegressor(cv=3, random_state=0).fit(train[:1], y[:1], block_X=blocks, block_y=block_y)
    assert one.correction_kind_ == "ratio" and one.correction_loo_mape_ == {}
    none = BlockSumRegressor(cv=3, random_state=0).fit([], [], block_X=blocks, block_y=block_y)
    assert none.correction_kind_ == "identity" and np.allclose(none.predict(test), none.block_sums(test))


def test_whole_network_model_ranks_networks():
    train, test = nets(60, 4), nets(30, 5)
    cost = lambda net: sum(block_cost(b) for b in net)  # noqa: E731
    model = WholeNetworkRegressor(random_state=0).fit(train, [cost(n) for n in train])
    assert validation_figures([cost(n) for n in test], model.predict(test))["spearman"] > 0.9


def test_validation_figures_on_known_values():
    f = validation_figures([1.0, 2.0, 4.0], [1.04, 2.18, 3.0])
    assert f["within_5pct"] == pytest.approx(1 / 3) and f["within_10pct"] == pytest.approx(2 / 3)
    assert f["mape_pct"] == pytest.approx(100 * (0.04 + 0.09 + 0.25) / 3)
    assert f["spearman"] == pytest.approx(1.0) and f["kendall"] == pytest.approx(1.0)
