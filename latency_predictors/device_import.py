"""``edgenas devices import``: a device measured elsewhere becomes a profile like any other.

The rows (arch, latency, optional energy) are stored as ``import`` measurements of the
device, a predictor is chosen and fitted, and its figures are cross-validated over the
imported rows (there is no separate holdout: every row is used once for validation, never
by the model that predicts it). With few rows on ``nb201`` the few-shot regressor is used
(it leans on the measured table of 13 other devices); otherwise the whole-network model.

Nothing stored is lost to a name clash: an existing profile of the same name is refused
unless ``replace=True``, and then it is first copied to ``NAME.json.bak-<UTC time>`` beside
it, while its measurements stay in the store (new rows go under a schedule label of their
own, e.g. ``external-2``), so renaming the backup to ``NAME.json`` restores it as it was.
A profile of another space is never replaced.

Cost is linear in the rows: they are stored in one transaction, and cross-validation
(nested: every fold also chooses its regressor) runs on a random subsample of at most
:data:`CV_MAX_ROWS` rows, which the figures' ``how`` states.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold
from tqdm import tqdm

from latency_predictors.csv_import import ImportedRow
from latency_predictors.device_profile import DeviceProfile, fit_cost_model, validate_device_name
from latency_predictors.errors import InputError, ProfileExistsError
from latency_predictors.fewshot_adapter import FEWSHOT_MAX_ROWS, fewshot_supported
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.metrics import validation_figures
from search_spaces import SearchSpace

BACKEND = "import"
SCHEDULE = "external"
CV_MAX_ROWS = 2000
"""Cross-validation of an import scores a random subsample of at most this many rows
(seed 0): figures within about a percentage point, in a bounded time however large the CSV."""


def import_device(
    name: str,
    space: SearchSpace,
    rows: Sequence[ImportedRow],
    store: MeasurementStore,
    profiles_dir: Path,
    source: str,
    *,
    replace: bool = False,
    progress: bool = True,
    cv_max_rows: int = CV_MAX_ROWS,
) -> DeviceProfile:
    """Store ``rows`` for device ``name``, fit and cross-validate its predictor, save it.

    ``ValueError`` for a bad name or too few rows; :class:`ProfileExistsError` if
    ``profiles_dir/NAME.json`` exists and ``replace`` is false, or if it holds a profile of
    another space (refused even with ``replace``). With ``replace`` the old file is first
    copied to a backup (see :func:`backup_profile`). ``progress`` shows bars on stderr for
    imports that take more than a second. ``cv_max_rows`` caps the rows cross-validated.
    """
    name = validate_device_name(name)
    if len(rows) < 2:
        raise InputError(f"{source}: {len(rows)} row(s); a predictor needs at least 2 measured archs")
    path = Path(profiles_dir) / f"{name}.json"
    existing = check_replaceable(path, name, space, replace=replace)
    label = _free_label(store, name, space.name)
    measurements = [
        Measurement(
            device=name, space=space.name, role="import", item=space.arch_key(r.arch), backend=BACKEND,
            schedule=label, target={"kind": "external"}, tvm_version="n/a",
            input_shape=tuple(space.input_shape(r.arch)), number=1, repeat=1, median_ms=r.latency_ms,
            spread_ms=0.0, results_ms=(r.latency_ms,), energy_mj=r.energy_mj,
            energy_method="imported" if r.energy_mj is not None else None,
        )
        for r in rows
    ]  # fmt: skip
    fewshot = len(rows) <= FEWSHOT_MAX_ROWS and fewshot_supported(space)
    profile = DeviceProfile(
        name=name,
        space=space.describe(),
        target={"kind": "external"},
        reached={"kind": "import", "file": source},
        backend=BACKEND,
        schedule={"kind": "external", "trials": 0, "database": None},
        schedule_label=label,
        tvm_version="n/a",
        energy="imported" if any(r.energy_mj is not None for r in rows) else "not measured",
        predictor="fewshot" if fewshot else "whole_network",
        predictor_params=_fewshot_params(name) if fewshot else {"random_state": 0},
        counts={"import": len(rows)},
    )
    # validate before storing: a failure leaves the store and the profiles as they were
    figures = cross_validate(profile, _SubsetStore(store, measurements), space, max_rows=cv_max_rows,
                             progress=progress)  # fmt: skip
    profile.validation = {profile.predictor: figures}
    store.add_many(measurements, progress=progress, desc=f"storing {name}")
    if existing is not None:
        backup_profile(path)
    profile.save(path)
    return profile


@dataclass(frozen=True)
class Added:
    """What :func:`add_measurements` did: the refitted profile and how many rows it stored,
    skipped as already stored (same arch, same value), or kept as stored though the file
    gives another value (``conflicts``: arch keys)."""

    profile: DeviceProfile
    added: int
    duplicates: int
    conflicts: tuple[str, ...]


def add_measurements(
    name: str,
    space: SearchSpace,
    rows: Sequence[ImportedRow],
    store: MeasurementStore,
    profiles_dir: Path,
    source: str,
    *,
    progress: bool = True,
    cv_max_rows: int = CV_MAX_ROWS,
) -> Added:
    """Add ``rows`` to the imported device ``name`` and refit (and cross-validate) its predictor.

    The rows join the device's current import (its schedule label), so the predictor fits
    on everything imported. An arch already stored is never stored twice: the same value
    is a duplicate (a file imported twice changes nothing), another value is a conflict
    and the stored row stays (re-import with ``replace`` to start over). The predictor
    kind follows the row count as for a new import (few-shot up to
    :data:`~latency_predictors.fewshot_adapter.FEWSHOT_MAX_ROWS` rows where it applies).

    :class:`ProfileExistsError` (one line) when there is no such imported device of this
    space: adding CSV rows to a device profiled with TVM would mix two ways of measuring.
    """
    name = validate_device_name(name)
    path = Path(profiles_dir) / f"{name}.json"
    if not path.exists():
        raise ProfileExistsError(f"no device {name!r} to add to ({path} does not exist); import it first "
                                 "without --add")
    try:
        profile = DeviceProfile.load(path)
    except (OSError, ValueError, TypeError) as exc:
        raise ProfileExistsError(f"{path} cannot be read ({_first_line(exc)}); move it away and import again") from None
    wanted = json.loads(json.dumps(space.describe()))
    if profile.space != wanted:
        raise ProfileExistsError(f"device {name!r} is a profile for {_space_label(profile.space)}, not "
                                 f"{_space_label(wanted)}; add measurements of its own space")
    if profile.backend != BACKEND:
        raise ProfileExistsError(
            f"device {name!r} was {how_made(profile)}; --add extends imported devices only (measurements taken "
            f"elsewhere would mix with {profile.backend} timings): measure it with `edgenas search --verify K`"
        )
    stored = {m.item: m for m in store.query(name, space=space.name, role="import", backend=BACKEND,
                                              schedule=profile.schedule_label)}
    new: list[Measurement] = []
    duplicates, conflicts = 0, []
    seen: set[str] = set()
    for r in rows:
        key = space.arch_key(r.arch)
        old = stored.get(key)
        if old is not None or key in seen:
            if old is not None and not np.isclose(old.median_ms, r.latency_ms, rtol=1e-9, atol=0.0):
                conflicts.append(key)
            else:
                duplicates += 1
            continue
        seen.add(key)
        new.append(Measurement(
            device=name, space=space.name, role="import", item=key, backend=BACKEND,
            schedule=profile.schedule_label, target={"kind": "external"}, tvm_version="n/a",
            input_shape=tuple(space.input_shape(r.arch)), number=1, repeat=1, median_ms=r.latency_ms,
            spread_ms=0.0, results_ms=(r.latency_ms,), energy_mj=r.energy_mj,
            energy_method="imported" if r.energy_mj is not None else None,
        ))
    if not new:
        return Added(profile, 0, duplicates, tuple(conflicts))
    total = len(stored) + len(new)
    fewshot = total <= FEWSHOT_MAX_ROWS and fewshot_supported(space)
    profile.predictor = "fewshot" if fewshot else "whole_network"
    if fewshot and "reference" not in profile.predictor_params:
        profile.predictor_params = _fewshot_params(name)
    elif not fewshot:
        profile.predictor_params = {"random_state": 0}
    everything = list(stored.values()) + new
    figures = cross_validate(profile, _SubsetStore(store, everything), space, max_rows=cv_max_rows,
                             progress=progress)  # fmt: skip
    store.add_many(new, progress=progress, desc=f"storing {name}")
    profile.validation = {profile.predictor: figures}
    profile.counts = {**profile.counts, "import": total}
    reached = dict(profile.reached or {})
    reached["added"] = [*reached.get("added", []), source]
    profile.reached = reached
    profile.save(path)
    return Added(profile, len(new), duplicates, tuple(conflicts))


def check_replaceable(path: Path, name: str, space: SearchSpace, *, replace: bool) -> DeviceProfile | None:
    """The profile at ``path`` if there is one that ``replace`` allows to replace, ``None``
    if there is none; :class:`ProfileExistsError` (one line) otherwise."""
    if not path.exists():
        return None
    try:
        old = DeviceProfile.load(path)
        old_space = old.space
    except (OSError, ValueError, TypeError) as exc:
        raise ProfileExistsError(
            f"{path} exists but cannot be read ({_first_line(exc)}); move it away to import device {name!r}"
        ) from None
    wanted = json.loads(json.dumps(space.describe()))
    if old_space != wanted:
        raise ProfileExistsError(
            f"device {name!r} already has a profile for {_space_label(old_space)} ({path}, {how_made(old)}); "
            f"it is never replaced by one for {_space_label(wanted)}: import under another name, "
            f"e.g. {name}-{space.name}"
        )
    if not replace:
        raise ProfileExistsError(
            f"device {name!r} already has a profile ({path}, {how_made(old)}); pass --add to add these rows to "
            "its measurements, or --replace to replace it (the old one is kept as a .bak file beside it)"
        )
    return old


def how_made(profile: DeviceProfile) -> str:
    """How ``profile`` was made, in a few words (for messages)."""
    reached, when = profile.reached or {}, (profile.created or "?")[:19]
    kind = reached.get("kind")
    if kind == "import":
        return f"imported from {reached.get('file', '?')} on {when}"
    where = {
        "local": "on this machine",
        "rpc": f"over RPC at {reached.get('address', '?')}",
        "tracker": f"through the tracker {reached.get('tracker', '?')} (key {reached.get('key', '?')})",
    }.get(str(kind), f"reached as {kind}")
    return f"profiled with {profile.backend} {where} on {when}"


def backup_profile(path: Path) -> Path:
    """Copy ``path`` byte for byte to ``PATH.bak-<UTC time>`` (never over another backup).

    Renaming the copy back to ``NAME.json`` restores the profile: the measurements it
    refers to are never deleted by an import.
    """
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    backup = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.bak-{stamp}-{n}")
    shutil.copy2(path, backup)
    return backup


def _free_label(store: MeasurementStore, name: str, space: str) -> str:
    """A schedule label no stored import of ``name`` uses: ``external``, else ``external-N``,
    so a new import never overwrites or deletes the rows an older profile (or its backup)
    refers to."""
    used = set(store.schedules(name, space=space, role="import", backend=BACKEND))
    if SCHEDULE not in used:
        return SCHEDULE
    n = 2
    while f"{SCHEDULE}-{n}" in used:
        n += 1
    return f"{SCHEDULE}-{n}"


def _space_label(description: dict[str, Any]) -> str:
    preset = description.get("preset")
    return f"space {description.get('name', '?')}" + (f" (preset {preset})" if preset else "")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 120 else line[:117] + "..."


def _fewshot_params(name: str) -> dict[str, Any]:
    """Reference columns: every table device except the one being imported (and its
    batch-size siblings), so a re-import of a table device is not scored on itself."""
    from latency_predictors.nb201_table import load_nb201_latency

    table = load_nb201_latency()
    exclude = table.related(name) if name in table.devices else ()
    return {"reference": list(table.reference_devices(exclude=exclude))}


def cross_validate(
    profile: DeviceProfile,
    store: Any,
    space: SearchSpace,
    *,
    max_rows: int = CV_MAX_ROWS,
    progress: bool = False,
) -> dict[str, Any]:
    """Figures from K-fold predictions (leave-one-out below 10 rows) over the imported rows.

    ``store`` is anything with the :meth:`MeasurementStore.query` signature. Above
    ``max_rows`` rows a random subsample of ``max_rows`` (seed 0) is cross-validated, so
    the cost does not grow with the file; the figures' ``how`` says so.
    """
    rows = store.query(profile.name, space=space.name, role="import", backend=BACKEND,
                       schedule=profile.schedule_label)  # fmt: skip
    total = len(rows)
    if total > max_rows:
        keep = np.sort(np.random.default_rng(0).choice(total, size=max_rows, replace=False))
        rows = [rows[i] for i in keep]
    n = len(rows)
    if n < 3:
        return {"n": n, "note": "too few rows to cross-validate"}
    folds = KFold(n if n < 10 else 5, shuffle=True, random_state=0)
    pred = np.zeros(n)
    splits = tqdm(folds.split(np.arange(n)), total=folds.get_n_splits(), desc=f"cross-validating {profile.name}",
                  unit="fold", disable=not progress, delay=1.0, leave=False)  # fmt: skip
    with splits:
        for train_idx, test_idx in splits:
            sub = _SubsetStore(store, [rows[i] for i in train_idx])
            model = fit_cost_model(profile, sub, space=space)  # type: ignore[arg-type]
            pred[test_idx] = model.predict([space.arch_from_json(rows[i].item) for i in test_idx])["latency_ms"]
    figures: dict[str, Any] = validation_figures([m.median_ms for m in rows], pred)
    over = f"the {n} imported networks" if n == total else f"a random {n} of the {total} imported networks"
    figures["how"] = f"{folds.get_n_splits()}-fold cross-validation over {over} (measured elsewhere)"
    if n < total:
        figures["rows_imported"] = total
    return figures


class _SubsetStore:
    """A read-only view of some measurements, so cross-validation refits on a fold."""

    def __init__(self, store: Any, rows: list[Measurement]) -> None:
        self.rows = rows

    def query(self, device: str, **filters: Any) -> list[Measurement]:
        wanted = [(k, v) for k, v in filters.items() if v is not None]
        return [m for m in self.rows if m.device == device and all(getattr(m, k) == v for k, v in wanted)]
