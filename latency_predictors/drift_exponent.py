"""How strongly a profile's measurements follow the reference network: the drift exponent.

Every repeat of a profile's measurements is paired with a reading of one reference
network (:mod:`latency_predictors.reference`) and corrected as ``item x (baseline /
reference) ** exponent``. With exponent 1 an item is assumed to slow down exactly as
much as the reference. On a shared machine it does not: on the project's 2-core VM the
reference (a 3.6 ms gpt prefill) read 2.9 ms in one state of the host and 4.8 ms in
another (1.7x), while a 100 ms prefill of the same space slowed 1.1x and sub-millisecond
decode networks about 1.3x. Divided by the full 1.7x, the big network's readings over a
profile spread *more* than uncorrected (CV 12 % against 6 %), networks measured in the
slow state were predicted 10-15 % too fast, and only 48-58 % of never-seen gpt networks
came within ±10 %.

:func:`choose_exponent` picks the exponent from the profile's own measurements, the one
that makes them most self-consistent:

* over time: the CV of the noise probe, one held-out network re-timed at evenly spaced
  times over the profile (the same network must read the same);
* across granularity: the leave-one-out error of the block-sum predictor over the
  *training* networks (summed blocks, measured in other states, must match whole
  networks); never the held-out networks, which stay for validation.

The score is the root of the sum of both squared (each in %); the lowest wins, on a grid
from 0 (no correction) to 1 (the full correction), coarse then refined to 0.1. On the
same machine this chose 0.9 for the mbv3 space (its networks are like its reference) and
0.5-0.7 for gpt (two profiles). Measurements keep their raw readings, so the exponent is applied when
they are read (:func:`latency_predictors.device_profile.measurements_for`), and later
measurements of the device are taken with it (``profiler_for_profile``).

Example::

    exponent, why = choose_exponent(profile, store, space)
    profile.reference = replace(Reference.from_json(profile.reference), exponent=exponent,
                                chosen_by=why).to_json()
"""

from __future__ import annotations

import math
from copy import copy
from dataclasses import replace
from typing import Any

import numpy as np

from latency_predictors.cost_metrics import latency_metrics
from latency_predictors.device_profile import DeviceProfile, fit_cost_model, measurements_for
from latency_predictors.measurements import MeasurementStore
from latency_predictors.reference import Reference
from search_spaces import SearchSpace

COARSE = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
STEP = 0.1


def exponent_scores(profile: DeviceProfile, store: MeasurementStore, space: SearchSpace,
                    exponent: float, params: dict[str, Any] | None = None) -> dict[str, float]:
    """The two consistency figures of ``profile``'s measurements corrected with ``exponent``
    (``loo_mape_pct``: block-sum leave-one-out error over training networks, mean over
    metrics; ``probe_cv_pct``: the noise probe's CV) and their combined ``score``; a
    figure that cannot be computed (too few networks, no probe) is left out. ``params``
    replace the profile's predictor parameters (a fixed block regressor, to compare
    exponents cheaply)."""
    reference = Reference.from_json(profile.reference)
    if reference is None:
        raise ValueError(f"profile {profile.name!r} is not drift corrected")
    trial = copy(profile)
    trial.reference = replace(reference, exponent=exponent).to_json()
    if params is not None:
        trial.predictor_params = params
    out: dict[str, float] = {"exponent": round(float(exponent), 3)}
    trial.predictor = "block_sum"
    try:
        model = fit_cost_model(trial, store, space=space)
    except ValueError:  # no blocks (InputError is one): the probe alone decides
        model = None
    if model is not None:
        errors = []
        for metric in latency_metrics(space):
            reg = model.latencies.get(metric.name)
            loo = getattr(reg, "correction_loo_mape_", {}).get(getattr(reg, "correction_kind_", ""))
            if loo is not None and math.isfinite(loo):
                errors.append(loo)
        if errors:
            out["loo_mape_pct"] = float(np.mean(errors))
    probe = np.asarray([m.median_ms for m in measurements_for(trial, store, "noise")])
    if len(probe) >= 3:
        out["probe_cv_pct"] = float(100 * probe.std() / probe.mean())
    parts = [out[k] for k in ("loo_mape_pct", "probe_cv_pct") if k in out]
    if parts:
        out["score"] = float(np.sqrt(np.sum(np.square(parts))))
    return out


def choose_exponent(profile: DeviceProfile, store: MeasurementStore,
                    space: SearchSpace | None = None) -> tuple[float, dict[str, Any]]:
    """The drift exponent in [0, 1] that makes ``profile``'s measurements most consistent
    (see the module's docstring), and a record of the choice for the profile's JSON
    (every exponent tried with its figures, the rule). A profile with nothing to judge by
    (no training networks and no noise probe) keeps exponent 1, and says so."""
    space = space or profile.build_space()
    params = cheap_params(profile, store, space)
    tried: dict[float, dict[str, float]] = {}

    def score(e: float) -> float:
        e = round(min(1.0, max(0.0, e)), 3)
        if e not in tried:
            tried[e] = exponent_scores(profile, store, space, e, params)
        return tried[e].get("score", math.inf)

    best = min(COARSE, key=lambda e: (score(e), -e))
    if not math.isfinite(score(best)):
        return 1.0, {"rule": "exponent 1 (the full correction): too few training networks and no noise probe "
                             "to choose by"}
    for e in (best - STEP, best + STEP):
        if 0.0 <= e <= 1.0:
            score(e)
    chosen = min(tried, key=lambda e: (tried[e].get("score", math.inf), -e))
    return chosen, {
        "rule": "lowest sqrt(loo_mape_pct^2 + probe_cv_pct^2): leave-one-out error of the block-sum predictor "
                "over the training networks and CV of the noise probe, drift corrected with each exponent",
        "block_regressor": (params or {}).get("candidates", [None])[0],
        "tried": [tried[e] for e in sorted(tried)],
    }


def cheap_params(profile: DeviceProfile, store: MeasurementStore, space: SearchSpace) -> dict[str, Any] | None:
    """Predictor parameters that fit the block regressor the profile's fit selects (with
    the full correction) without selecting it again: eight exponents then cost eight
    plain fits instead of eight cross-validated selections among four regressors."""
    reference = Reference.from_json(profile.reference)
    trial = copy(profile)
    trial.reference = replace(reference, exponent=1.0).to_json() if reference else profile.reference
    trial.predictor = "block_sum"
    try:
        model = fit_cost_model(trial, store, space=space)
    except ValueError:
        return None
    block_model = getattr(model.latency, "block_model_", None)
    best = getattr(getattr(block_model, "regressor_", None), "best_", None)
    return None if best is None else {**profile.predictor_params, "candidates": (best,), "cv": 1}


__all__ = ["cheap_params", "choose_exponent", "exponent_scores"]
