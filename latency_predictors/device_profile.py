"""A device's profile: who it is, how it was measured, how well its predictors do.

Stored version-independently: a JSON file (``profiles/NAME.json``) with the device's
identity, TVM target, how it was reached, schedule, timing settings, noise floor,
predictor settings and validation figures, beside the measurements in the store. The
fitted estimators are never pickled: :func:`fit_cost_model` refits them from the stored
measurements when the profile is loaded (seconds), so a new scikit-learn never breaks
an old profile.

Example::

    profile = DeviceProfile.load(workspace / "profiles" / "laptop.json")
    model = fit_cost_model(profile, store)
    model.predict([arch])["latency_ms"]            # gpt: ["decode_ms"], ["prefill_ms"]

A profile predicts one latency per metric of its space
(:mod:`latency_predictors.cost_metrics`): ``latency_ms`` for spaces whose networks run one
way, ``decode_ms`` and ``prefill_ms`` for the ``gpt`` space; ``validation`` holds the
primary (first) metric's figures, ``metric_validation`` every metric's.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from latency_predictors.cost_metrics import LatencyMetric, default_metric, latency_metrics
from latency_predictors.energy import NOT_MEASURED
from latency_predictors.errors import InputError
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.predictors import BlockSumRegressor, WholeNetworkRegressor
from latency_predictors.reference import Reference
from search_spaces import BlockSpec, SearchSpace, space_from_description

FORMAT_VERSION = 1
PREDICTOR_KINDS = ("block_sum", "whole_network", "fewshot")
MAX_NAME_LENGTH = 100
_NAME = re.compile(r"[A-Za-z0-9._-]+")


def validate_device_name(name: str) -> str:
    """``name`` if it can name a device, else ``ValueError`` (one line, with the fix).

    A device name becomes a file name (``profiles/NAME.json``), so it is letters, digits,
    ``-``, ``_`` and ``.`` only: never empty, never ``.`` or ``..``, no path separators, at
    most 100 characters. ``../x`` would otherwise write outside the workspace, and ``''``
    would leave a ``.json`` that every listing trips over.
    """
    if not isinstance(name, str) or not name:
        raise InputError("the device name is empty; name it with letters, digits, '-', '_' or '.' (e.g. pixel7)")
    shown = repr(name) if len(name) <= 40 else repr(name[:37]) + "..."
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(f"device name {shown} is {len(name)} characters; use at most {MAX_NAME_LENGTH}")
    if name in (".", "..") or not _NAME.fullmatch(name):
        raise InputError(
            f"device name {shown} is not allowed: use letters, digits, '-', '_' or '.' "
            "(no path separators, not '.' or '..'), e.g. pixel7"
        )
    return name


@dataclass
class DeviceProfile:
    """Everything about one device that is not a raw measurement.

    ``reached``: ``{"kind": "local"}``, ``{"kind": "rpc", "address": ...}``,
    ``{"kind": "tracker", "tracker": ..., "key": ...}`` or ``{"kind": "import", "file": ...}``.
    ``schedule``: ``{"kind": "untuned" | "metaschedule", "trials": N, "database": DIR}``;
    ``schedule_label`` is the form stored with each measurement. ``noise_floor``: the
    spread of one network timed repeatedly over the profile (``cv_pct``,
    ``max_rel_dev_pct``) and how far the machine's speed drifted (``drift_range_pct``).
    ``reference``: the reference network every measurement was paired with and its
    baseline (:class:`~latency_predictors.reference.Reference`; ``None``: no drift
    correction). ``plan``: what the profile chose to measure and why (``notes``).
    ``validation``: figures per predictor on held-out whole networks, with ``how`` they
    were measured.
    """

    name: str
    space: dict[str, Any]
    target: dict[str, Any]
    reached: dict[str, Any]
    backend: str = "tvm"
    schedule: dict[str, Any] = field(default_factory=lambda: {"kind": "untuned", "trials": 0, "database": None})
    schedule_label: str = "untuned"
    tvm_version: str = ""
    timing: dict[str, Any] = field(default_factory=dict)
    noise_floor: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    energy: str = NOT_MEASURED
    predictor: str = "block_sum"
    predictor_params: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    metric_validation: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    build_seconds: float | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.predictor not in PREDICTOR_KINDS:
            raise InputError(f"predictor {self.predictor!r} is unknown; use one of {PREDICTOR_KINDS}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["metric_validation"]:  # one metric: the file reads as it always has
            del data["metric_validation"]
        return data

    def metric_figures(self, metric: str | None = None) -> dict[str, Any]:
        """Validation figures of the chosen predictor for ``metric`` (``None``: the primary)."""
        table = self.metric_validation.get(metric, {}) if metric and self.metric_validation else self.validation
        figures = table.get(self.predictor, {})
        return figures if isinstance(figures, dict) else {}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceProfile:
        known = set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or "name" not in data:
            raise InputError("a device profile is a JSON object with at least a name")
        if data.get("format_version", 1) > FORMAT_VERSION:
            raise InputError(
                f"profile {data['name']!r} has format {data['format_version']}, newer than this "
                f"edgenas reads ({FORMAT_VERSION}); upgrade edgenas"
            )
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path) -> Path:
        """Write atomically (a half-written profile never replaces a good one); the name
        must pass :func:`validate_device_name` (it becomes the file's name)."""
        validate_device_name(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> DeviceProfile:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON ({exc.msg}); re-create the profile") from None
        return cls.from_json(data)

    def build_space(self) -> SearchSpace:
        return space_from_description(self.space)


@dataclass
class CostModel:
    """Fitted predictors of one device: ``predict(archs)`` gives every latency metric of the
    space (``latency_ms``; ``decode_ms`` and ``prefill_ms`` for gpt) and energy where measured.

    ``latency`` is the primary metric's predictor, ``latencies`` every metric's by name.
    """

    profile: DeviceProfile
    space: SearchSpace
    latency: Any
    energy: Any | None = None
    latencies: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        every = latency_metrics(self.space)
        if not self.latencies:
            self.latencies = {every[0].name: self.latency}
        self.metrics: tuple[LatencyMetric, ...] = tuple(m for m in every if m.name in self.latencies)

    @property
    def primary(self) -> str:
        """The primary metric's name (``latency_ms``; ``decode_ms`` for gpt)."""
        return self.metrics[0].name

    def predict(self, archs: Sequence[Any]) -> dict[str, np.ndarray]:
        fewshot = self.profile.predictor == "fewshot"
        primary = self.metrics[0]
        nets = [primary.blocks(self.space, a) for a in archs] if not fewshot or self.energy is not None else []
        inputs = list(archs) if fewshot else nets
        out = {primary.name: np.asarray(self.latency.predict(inputs), dtype=float)}
        for metric in self.metrics[1:]:
            more = [metric.blocks(self.space, a) for a in archs]
            out[metric.name] = np.asarray(self.latencies[metric.name].predict(more), dtype=float)
        if self.energy is not None:
            out["energy_mj"] = np.asarray(self.energy.predict(nets), dtype=float)
        return out


    def split_latency_ms(self, arch: Any, cuts: Sequence[int], correction: str = "proportional") -> tuple[np.ndarray, np.ndarray]:
        """Predicted latency of the blocks before and after each cut of ``arch`` on this device.

        For each ``k`` in ``cuts``: ``blocks[:k]`` and ``blocks[k:]`` of ``space.blocks(arch)``,
        each run as a network of its own (an empty part costs 0). How the whole-network
        correction of a block-sum predictor (:class:`BlockSumRegressor`) treats a part is
        ``correction`` (see :data:`PART_CORRECTIONS`):

        * ``"proportional"`` (default): the corrected whole network shared out in proportion
          to the parts' block sums. The parts add up to the whole prediction, the edge's
          share grows with every block, and the correction is only ever applied where it
          was fitted (whole networks);
        * ``"per_part"``: each part corrected as a network of its own (its own call overhead
          and per-block terms). Right when the correction's intercept is a per-call
          overhead; wrong when it is not (a fit with a negative intercept makes a small
          part cost almost nothing), since parts are smaller than any network it was fitted on;
        * ``"none"``: the plain sum of the part's block predictions.

        Predictors that price whole networks only (``whole_network``, ``fewshot``) price the
        empty and the whole part, and return NaN for the rest.
        """
        return self.split_latency_many([arch], [cuts], correction)[0]

    def split_latency_many(self, archs: Sequence[Any], cuts: Sequence[Sequence[int]],
                           correction: str = "proportional") -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`split_latency_ms` for many archs at once (each distinct block predicted once)."""
        if correction not in PART_CORRECTIONS:
            raise InputError(f"correction {correction!r} is unknown; use one of {', '.join(PART_CORRECTIONS)}")
        nets = [self.space.blocks(a) for a in archs]
        ks_all = [np.asarray(c, dtype=int) for c in cuts]
        for blocks, ks in zip(nets, ks_all):
            if np.any((ks < 0) | (ks > len(blocks))):
                raise InputError(f"cuts must lie in 0..{len(blocks)} for an arch of {len(blocks)} blocks, got {list(ks)}")
        name = default_metric(self.space).name
        latency = self.latencies[name]
        if self.profile.predictor != "block_sum":
            wholes = self.predict(list(archs))[name] if archs else []
            out = []
            for blocks, ks, whole in zip(nets, ks_all, wholes):
                n = len(blocks)
                out.append((np.where(ks == 0, 0.0, np.where(ks == n, whole, np.nan)),
                            np.where(ks == n, 0.0, np.where(ks == 0, whole, np.nan))))
            return out
        unique = list(dict.fromkeys(b for blocks in nets for b in blocks))
        known = dict(zip(unique, np.asarray(latency.block_model_.predict(unique), dtype=float)))
        prefixes = [np.concatenate([[0.0], np.cumsum([known[b] for b in blocks])]) for blocks in nets]
        sums_before = np.concatenate([p[ks] for p, ks in zip(prefixes, ks_all)])
        sums_after = np.concatenate([p[-1] - p[ks] for p, ks in zip(prefixes, ks_all)])
        counts = np.concatenate(ks_all) if ks_all else np.zeros(0, dtype=int)
        sizes = np.concatenate([np.full(len(ks), len(b)) for b, ks in zip(nets, ks_all)]) if ks_all else counts
        if correction == "none":
            before, after = sums_before, sums_after
        elif correction == "per_part":
            before = latency.correct(sums_before, counts)
            after = latency.correct(sums_after, sizes - counts)
        else:
            totals = sums_before + sums_after
            wholes = latency.correct(totals, sizes)
            share = np.divide(sums_before, totals, out=counts / np.maximum(sizes, 1), where=totals > 0)
            before, after = wholes * share, wholes * (1.0 - share)
        before = np.where(counts == 0, 0.0, before)
        after = np.where(counts == sizes, 0.0, after)
        bounds = np.cumsum([0] + [len(ks) for ks in ks_all])
        return [(before[i:j], after[i:j]) for i, j in zip(bounds[:-1], bounds[1:])]


PART_CORRECTIONS = ("proportional", "per_part", "none")
"""How :meth:`CostModel.split_latency_ms` applies a whole-network correction to part of a network."""


def measurements_for(profile: DeviceProfile, store: MeasurementStore, role: str) -> list[Measurement]:
    """``profile``'s stored measurements of one role, in the profile's terms: paired
    measurements are drift corrected with the profile's reference baseline and exponent
    (recomputed from their readings, so a re-chosen exponent applies to all of them)."""
    rows = store.query(
        profile.name,
        space=profile.space["name"],
        role=role,
        backend=profile.backend,
        schedule=profile.schedule_label,
    )
    reference = Reference.from_json(getattr(profile, "reference", None))
    return rows if reference is None else [reference.restate(m) for m in rows]


def fit_cost_model(
    profile: DeviceProfile,
    store: MeasurementStore,
    *,
    exclude_holdout: bool = True,
    space: SearchSpace | None = None,
) -> CostModel:
    """Refit ``profile``'s predictors from its stored measurements (never the holdout), one
    per latency metric of its space: blocks, and whole networks measured for training,
    imported, or measured by a search's verification (``verify``: the networks near a
    budget, where accuracy matters most). A metric nothing was measured for (a gpt device
    known only by its prefill) is left out of the model, as long as one metric is fitted.

    Fits run with one BLAS thread: they are small (a few hundred rows at most), and with
    two threads each of the dozens of robust line fits took 10-25x longer whenever the
    other core was busy (threads waiting on each other)."""
    with threadpool_limits(limits=1):
        return _fit_cost_model(profile, store, exclude_holdout=exclude_holdout, space=space)


def _fit_cost_model(profile: DeviceProfile, store: MeasurementStore, *, exclude_holdout: bool,
                    space: SearchSpace | None) -> CostModel:
    space = space or profile.build_space()
    params = dict(profile.predictor_params)
    metrics = latency_metrics(space)
    if profile.predictor == "fewshot" and len(metrics) > 1:
        raise InputError(f"the fewshot predictor prices one latency; space {space.name!r} has "
                         f"{', '.join(m.name for m in metrics)}: use block_sum or whole_network")
    blocks_m = measurements_for(profile, store, "block") if profile.predictor == "block_sum" else []
    block_specs = [BlockSpec.from_json(json.loads(m.item)) for m in blocks_m]
    latencies: dict[str, Any] = {}
    primary_nets: tuple[list[Any], list[Measurement]] = ([], [])
    skipped: list[str] = []
    for metric in metrics:
        what = "" if len(metrics) == 1 else f" of {metric.name}"
        nets_m = [m for role in ("train", "import", "verify") for m in measurements_for(profile, store, metric.role(role))]
        if len(metrics) > 1 and not nets_m and not any(metric.owns(b) for b in block_specs):
            skipped.append(metric.name)  # never measured: the model predicts the other metrics
            continue
        nets = [metric.blocks(space, space.arch_from_json(m.item)) for m in nets_m]
        y = [m.median_ms for m in nets_m]
        if not latencies:
            primary_nets = (nets, nets_m)
        if profile.predictor == "block_sum":
            mine = [(b, m.median_ms) for b, m in zip(block_specs, blocks_m) if metric.owns(b)]
            if not mine:
                raise InputError(f"device {profile.name!r} has no block measurements{what}; re-run `edgenas profile`")
            latencies[metric.name] = BlockSumRegressor(**params).fit(
                nets, y, block_X=[b for b, _ in mine], block_y=[t for _, t in mine])
        elif profile.predictor == "whole_network":
            if len(nets) < 2:
                raise InputError(f"device {profile.name!r} has {len(nets)} whole-network measurements{what}; "
                                 "need 2 or more")
            latencies[metric.name] = WholeNetworkRegressor(**params).fit(nets, y)
        else:
            from latency_predictors.fewshot_adapter import fit_fewshot

            latencies[metric.name] = fit_fewshot(space, nets_m, params)
    if not latencies:
        raise InputError(f"device {profile.name!r} has no measurements of {', '.join(skipped)}; re-run `edgenas profile`")
    latency = next(iter(latencies.values()))
    nets, nets_m = primary_nets
    with_energy = [(n, m.energy_mj) for n, m in zip(nets, nets_m) if m.energy_mj is not None]
    energy = None
    if len(with_energy) >= 2:
        energy = WholeNetworkRegressor(random_state=params.get("random_state", 0)).fit(
            [n for n, _ in with_energy], [e for _, e in with_energy]
        )
    return CostModel(profile, space, latency, energy, latencies)
