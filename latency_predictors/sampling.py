"""Adaptive sampling: measure next where the current predictor is most likely wrong.

A committee of different regressors (gradient boosting, random forest, ridge,
k-nearest neighbours) is trained on the blocks measured so far; where they disagree
about an unmeasured block, none of them can be trusted there (query by committee).
The disagreement is weighted by how much the block matters to whole networks: how often
it occurs in sampled networks times its predicted cost, so a rare, cheap block is not
measured before a frequent, expensive one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from latency_predictors.features import BlockFeaturizer
from latency_predictors.predictors import CANDIDATES, make_regressor
from search_spaces import BlockSpec


def committee_spread(
    train_X: Sequence[BlockSpec],
    train_y: Sequence[float],
    query: Sequence[BlockSpec],
    candidates: Sequence[str] = CANDIDATES,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per query block: ``(std of the committee's log-predictions, median prediction)``."""
    featurizer = BlockFeaturizer().fit(list(train_X) + list(query))
    A = featurizer.transform(train_X)
    B = featurizer.transform(query)
    log_y = np.log(np.asarray(train_y, dtype=np.float64))
    logs = np.asarray([make_regressor(n, random_state).fit(A, log_y).predict(B) for n in candidates])
    return logs.std(axis=0), np.exp(np.median(logs, axis=0))


def expected_errors(
    train_X: Sequence[BlockSpec],
    train_y: Sequence[float],
    query: Sequence[BlockSpec],
    frequency: Sequence[float],
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per query block: ``(error it is expected to add to an average network in ms,
    its predicted cost in ms)``. The error is committee spread x predicted cost x
    occurrences per network; measure the largest first."""
    spread, cost = committee_spread(train_X, train_y, query, random_state=random_state)
    return spread * cost * np.asarray(frequency, dtype=np.float64), cost
