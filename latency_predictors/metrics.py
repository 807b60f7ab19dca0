"""Validation figures for cost predictors, all on whole networks never used for fitting.

RMSE (ms), MAPE (%), the share of predictions within ±5 % and ±10 % of the measured
value, and the rank correlations Spearman's rho and Kendall's tau (what a search needs
most: the right order).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats


def validation_figures(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Figures of ``y_pred`` against ``y_true`` (both positive, same length, at least 2)."""
    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if t.shape != p.shape or t.size < 2:
        raise ValueError(f"need two equal-length arrays of at least 2 values, got {t.shape} and {p.shape}")
    rel = np.abs(p - t) / t
    return {
        "n": int(t.size),
        "rmse_ms": float(np.sqrt(np.mean((p - t) ** 2))),
        "mape_pct": float(100 * rel.mean()),
        "within_5pct": float(np.mean(rel <= 0.05)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "spearman": float(stats.spearmanr(t, p).statistic),
        "kendall": float(stats.kendalltau(t, p).statistic),
    }
