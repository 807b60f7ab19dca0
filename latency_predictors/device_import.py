"""``edgenas devices import``: a device measured elsewhere becomes a profile like any other.

The rows (arch, latency, optional energy) are stored as ``import`` measurements of the
device (replacing an earlier import of the same name), a predictor is chosen and fitted,
and its figures are cross-validated over the imported rows (there is no separate
holdout: every row is used once for validation, never by the model that predicts it).
With few rows on ``nb201`` the few-shot regressor is used (it leans on the measured
table of 13 other devices); otherwise the whole-network model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from latency_predictors.csv_import import ImportedRow
from latency_predictors.device_profile import DeviceProfile, fit_cost_model
from latency_predictors.fewshot_adapter import FEWSHOT_MAX_ROWS, fewshot_supported
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.metrics import validation_figures
from search_spaces import SearchSpace

BACKEND = "import"
SCHEDULE = "external"


def import_device(
    name: str,
    space: SearchSpace,
    rows: Sequence[ImportedRow],
    store: MeasurementStore,
    profiles_dir: Path,
    source: str,
) -> DeviceProfile:
    """Store ``rows`` for device ``name``, fit and cross-validate its predictor, save it."""
    if len(rows) < 2:
        raise ValueError(f"{source}: {len(rows)} row(s); a predictor needs at least 2 measured archs")
    store.delete(name, role="import")
    for r in rows:
        store.add(
            Measurement(
                device=name, space=space.name, role="import", item=space.arch_key(r.arch), backend=BACKEND,
                schedule=SCHEDULE, target={"kind": "external"}, tvm_version="n/a",
                input_shape=tuple(space.input_shape(r.arch)), number=1, repeat=1, median_ms=r.latency_ms,
                spread_ms=0.0, results_ms=(r.latency_ms,), energy_mj=r.energy_mj,
                energy_method="imported" if r.energy_mj is not None else None,
            )
        )  # fmt: skip
    fewshot = len(rows) <= FEWSHOT_MAX_ROWS and fewshot_supported(space)
    profile = DeviceProfile(
        name=name,
        space=space.describe(),
        target={"kind": "external"},
        reached={"kind": "import", "file": source},
        backend=BACKEND,
        schedule={"kind": "external", "trials": 0, "database": None},
        schedule_label=SCHEDULE,
        tvm_version="n/a",
        energy="imported" if any(r.energy_mj is not None for r in rows) else "not measured",
        predictor="fewshot" if fewshot else "whole_network",
        predictor_params=_fewshot_params(name) if fewshot else {"random_state": 0},
        counts={"import": len(rows)},
    )
    profile.validation = {profile.predictor: cross_validate(profile, store, space)}
    profile.save(profiles_dir / f"{name}.json")
    return profile


def _fewshot_params(name: str) -> dict[str, Any]:
    """Reference columns: every table device except the one being imported (and its
    batch-size siblings), so a re-import of a table device is not scored on itself."""
    from latency_predictors.nb201_table import load_nb201_latency

    table = load_nb201_latency()
    exclude = table.related(name) if name in table.devices else ()
    return {"reference": list(table.reference_devices(exclude=exclude))}


def cross_validate(profile: DeviceProfile, store: MeasurementStore, space: SearchSpace) -> dict[str, Any]:
    """Figures from K-fold predictions (leave-one-out below 10 rows) over the imported rows."""
    rows = store.query(profile.name, space=space.name, role="import", backend=BACKEND, schedule=SCHEDULE)
    n = len(rows)
    if n < 3:
        return {"n": n, "note": "too few rows to cross-validate"}
    folds = KFold(n if n < 10 else 5, shuffle=True, random_state=0)
    pred = np.zeros(n)
    for train_idx, test_idx in folds.split(np.arange(n)):
        sub = _SubsetStore(store, [rows[i] for i in train_idx])
        model = fit_cost_model(profile, sub, space=space)  # type: ignore[arg-type]
        pred[test_idx] = model.predict([space.arch_from_json(rows[i].item) for i in test_idx])["latency_ms"]
    figures: dict[str, Any] = validation_figures([m.median_ms for m in rows], pred)
    figures["how"] = f"{folds.get_n_splits()}-fold cross-validation over the {n} imported networks (measured elsewhere)"
    return figures


class _SubsetStore:
    """A read-only view of some measurements, so cross-validation refits on a fold."""

    def __init__(self, store: MeasurementStore, rows: list[Measurement]) -> None:
        self.rows = rows

    def query(self, device: str, **filters: Any) -> list[Measurement]:
        return [m for m in self.rows if all(getattr(m, k) == v for k, v in filters.items() if v is not None)]
