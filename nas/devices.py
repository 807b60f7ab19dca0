"""The devices of a workspace: list them, import one measured elsewhere, predict what archs cost,
and say which archs to measure next.

These are what ``edgenas devices`` and ``edgenas predict`` run. A device is a profile
(``WORKSPACE/profiles/NAME.json``) plus its measurements; :mod:`nas.profiling` makes one
through TVM, :func:`import_device` from a CSV of whole networks measured elsewhere
(columns ``arch``, ``latency_ms`` and optionally ``energy_mj``).

A device that is only reachable as a CSV is refined at a budget in a loop:
:func:`suggest_measurements` names the archs whose measurement helps most near that
budget (:func:`write_todo` writes them as a CSV with an empty ``latency_ms`` column),
someone measures them on the device, and ``import_device(..., add=True)`` adds the filled
file to the device's measurements and refits its predictor.

Example::

    from nas.devices import import_device, predict_costs, suggest_measurements, write_todo
    from nas.workspace import Workspace

    ws = Workspace.resolve()
    import_device(ws, "pixel7", "nb201", "pixel7.csv")
    predict_costs(ws, "pixel7", space, archs)["latency_ms"]
    write_todo("todo.csv", suggest_measurements(ws, "pixel7", budget_ms=20.0, n=5))
    # ... fill latency_ms on the device, then:
    import_device(ws, "pixel7", "nb201", "todo.csv", add=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import EdgenasError
from nas.spaces import build_space
from nas.workspace import Workspace, check_device_name


def list_devices(workspace: Workspace) -> list[Any]:
    """Every device profile of the workspace (a damaged one is reported, not skipped silently)."""
    return [workspace.load_profile(name) for name in workspace.device_names()]


def import_device(workspace: Workspace, name: str, space: str | Any | None, measurements: str | Path, *,
                  preset: str | None = None, replace: bool = False, add: bool = False,
                  progress: bool = True) -> tuple[Any, int]:
    """Import ``measurements`` (CSV) as device ``name``; returns the profile and the row count.

    An existing device of that name is refused unless ``replace`` (then its profile is kept
    as a backup beside the new one) or ``add`` (the rows join its measurements, see
    :func:`add_measurements`); a device of another space under that name is always
    refused. With ``add``, ``space`` may be ``None`` (the device's own).
    """
    if add:
        if replace:
            raise EdgenasError("--add and --replace exclude each other: --add keeps the measurements, "
                               "--replace starts over")
        done = add_measurements(workspace, name, measurements, space, preset=preset, progress=progress)
        return done.profile, done.added
    from latency_predictors.csv_import import read_measurements_csv
    from latency_predictors.device_import import check_replaceable
    from latency_predictors.device_import import import_device as store_import

    check_device_name(name)
    if space is None:
        raise EdgenasError("--space is required for a new import (the space of the archs in the CSV)")
    built = build_space(space, preset=preset) if isinstance(space, str) else space
    _one_latency(built, "devices import")
    check_replaceable(workspace.profile_path(name), name, built, replace=replace)  # before reading the file
    rows = read_measurements_csv(measurements, built)
    profile = store_import(name, built, rows, workspace.measurements(), workspace.profiles_dir, str(measurements),
                           replace=replace, progress=progress)
    return profile, len(rows)


@dataclass(frozen=True)
class AddedMeasurements:
    """What :func:`add_measurements` did (rows added, duplicates skipped, conflicts kept as
    stored, rows without a latency yet) and the refitted profile."""

    profile: Any
    added: int
    duplicates: int
    conflicts: tuple[str, ...]
    blank: int


def add_measurements(workspace: Workspace, name: str, measurements: str | Path, space: str | Any | None = None, *,
                     preset: str | None = None, progress: bool = True) -> AddedMeasurements:
    """Add a CSV of measured archs to the imported device ``name`` and refit its predictor.

    Rows without a ``latency_ms`` (archs of a suggestion file not measured yet) are
    skipped; an arch already stored is never stored twice (the same file imported twice
    changes nothing).
    """
    from latency_predictors.csv_import import read_measurements_csv
    from latency_predictors.device_import import add_measurements as store_add

    check_device_name(name)
    profile = workspace.load_profile(name)
    if space is None:
        built = profile.build_space()
    else:
        built = build_space(space, preset=preset) if isinstance(space, str) else space
    _one_latency(built, "devices import --add")
    blank: list[int] = []
    rows = read_measurements_csv(measurements, built, skipped=blank)
    done = store_add(name, built, rows, workspace.measurements(), workspace.profiles_dir, str(measurements),
                     progress=progress)
    return AddedMeasurements(done.profile, done.added, done.duplicates, done.conflicts, len(blank))


@dataclass(frozen=True)
class Suggestion:
    """An arch worth measuring: its accuracy, predicted latency, chance of fitting the budget."""

    arch: Any
    accuracy: float
    predicted_ms: float
    chance: float


def suggest_measurements(workspace: Workspace, name: str, budget_ms: float, n: int, *, study: str | None = None,
                         storage: str | None = None, checkpoint: str | None = None, trials: int = 300,
                         seed: int = 0, quiet: bool = True) -> list[Suggestion]:
    """The ``n`` archs whose measurement on device ``name`` would help most at ``budget_ms``.

    Candidates are the archs of a search (``study``, or a search run here: the device, the
    budget, the band over it that a verified search explores, ``trials`` trials;
    ``checkpoint`` for spaces with a supernet). They are chosen as ``search --verify``
    would choose them, all at once: the largest expected accuracy gain over the best arch
    that safely fits, counting the chance each fits by the device's predictor and its
    error (:func:`nas.search.verify.choose_batch`). So they sit near the budget's edge,
    the most accurate first; archs the device has measured already are never suggested.
    """
    from nas.search.verify import choose_batch, fit_probability

    if n < 1:
        raise EdgenasError(f"-n must be at least 1, got {n}")
    if not budget_ms > 0:
        raise EdgenasError(f"--budget must be a positive number of milliseconds, got {budget_ms}")
    profile = workspace.load_profile(name)
    space = profile.build_space()
    _one_latency(space, "devices suggest")
    cost = workspace.cost_model(name, space)
    if study is not None:
        from nas.search.study import open_edgenas_study

        st, _ = open_edgenas_study(workspace, study, storage)
        from optuna.trial import TrialState

        trials_done = st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    else:
        trials_done = _search_for(workspace, profile, space, budget_ms, checkpoint, trials, seed, storage, quiet)
    archs, accs, keys = [], [], set()
    for t in trials_done:
        arch = space.arch_from_json(t.user_attrs["arch"])
        key = space.arch_key(arch)
        if key in keys:
            continue
        keys.add(key)
        archs.append(arch)
        accs.append(float(t.user_attrs["metrics"]["accuracy"]))
    if not archs:
        raise EdgenasError(f"study {study!r} has no complete trials to suggest from")
    store = workspace.measurements()
    measured = {m.item for role in ("train", "holdout", "import", "verify")
                for m in store.query(name, space=space.name, role=role)}
    pred = np.asarray(cost.predict(archs)["latency_ms"], dtype=float)
    error = _latency_error(profile)
    chance = fit_probability(pred, budget_ms, error)
    skip = np.array([space.arch_key(a) in measured for a in archs])
    picks = choose_batch(np.array(accs), chance, n, skip, fill=True)
    return [Suggestion(archs[i], accs[i], float(pred[i]), float(chance[i])) for i in picks]


def write_todo(path: str | Path, suggestions: Sequence[Suggestion], space: Any) -> Path:
    """Write ``suggestions`` as a CSV to measure: ``arch`` and an empty ``latency_ms`` to
    fill (what ``devices import --add`` reads), then what they were chosen on."""
    import csv
    import json

    path = Path(path)
    if path.is_dir():
        raise EdgenasError(f"--out {path} is a directory; name a CSV file")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "latency_ms", "predicted_ms", "chance_fits", "accuracy"])
        for s in suggestions:
            w.writerow([json.dumps(space.arch_to_json(s.arch), separators=(",", ":")), "", f"{s.predicted_ms:.6g}",
                        f"{s.chance:.3f}", f"{s.accuracy:.4g}"])
    return path


def _one_latency(space: Any, what: str) -> None:
    """CSV measurements carry one ``latency_ms`` column: refuse a space with several metrics."""
    from latency_predictors.cost_metrics import metric_names

    names = metric_names(space)
    if names != ("latency_ms",):
        raise EdgenasError(f"{what} reads one latency_ms column; space {space.name} has {', '.join(names)}: "
                           f"profile the device through TVM instead (edgenas profile --space {space.name} ...)")


def _latency_error(profile: Any) -> float | None:
    figures = (profile.validation or {}).get(profile.predictor, {})
    mape = figures.get("mape_pct") if isinstance(figures, dict) else None
    return None if mape is None else float(mape) / 100.0


def _search_for(workspace: Workspace, profile: Any, space: Any, budget_ms: float, checkpoint: str | None,
                trials: int, seed: int, storage: str | None, quiet: bool) -> list[Any]:
    """The complete trials of a search for the device at the budget (with the band a
    verified search explores over it): resumed when the same search ran before."""
    from nas.search import Budget, SearchSettings, SearchSpec
    from nas.search.runner import prepare, run_search

    # options {}: nb201's defaults, or the space a supernet checkpoint was trained on
    spec = SearchSpec(space.name, {}, (profile.name,), Budget(max_latency_ms=budget_ms), checkpoint=checkpoint,
                      workspace=str(workspace.root))
    problem = prepare(spec, "verify")
    settings = SearchSettings(trials=trials, seed=seed, storage=storage, buffered=not storage)
    _result, study = run_search(problem, settings, quiet=quiet)
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def predict_costs(workspace: Workspace, device: str, space: Any, archs: Sequence[Any]) -> dict[str, np.ndarray]:
    """Predicted ``latency_ms`` (and ``energy_mj`` where the device has a meter) of ``archs``."""
    if not archs:
        raise EdgenasError("no archs to predict")
    return workspace.cost_model(device, space).predict(list(archs))


__all__ = ["AddedMeasurements", "Suggestion", "add_measurements", "import_device", "list_devices",
           "predict_costs", "suggest_measurements", "write_todo"]
