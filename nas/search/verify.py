"""Device in the loop: measure a search's candidates at the budget's edge, refit, recommend what fits.

A search sees predicted latency; the budget is met or missed by the *true* one, and the
predictor is least reliable exactly where the decision is made: at the budget's edge,
where the most accurate feasible archs are. A fixed safety margin trades accuracy for
safety blindly. With ``edgenas search --verify K`` the device decides instead:

1. the search explores a band *above* the budget as well (``--safety-margin`` becomes
   ``-`` :func:`exploration_band`: archs up to about two predictor errors over the budget
   by prediction), so candidates on both sides of the edge are in the study;
2. up to ``K`` of its archs are measured on the device as it was profiled
   (:class:`ProfiledDevice`: same target, schedule, timing and reach), one at a time.
   Each next one is the arch with the largest expected gain in accuracy over the best
   arch measured to fit so far: ``(accuracy - incumbent) * P(fits)``, where ``P(fits)``
   comes from the refitted predictor and its error (log-normal, the error re-estimated
   from the archs just measured). Gains compare in logs, and measurements are spent while
   any unmeasured candidate is more accurate than the incumbent: a measurement is cheap
   next to shipping a worse model, and the chances are least sure exactly where they
   decide. Candidates of *equal* accuracy are one bet: an evaluator that scores archs
   alike usually sees one network (isomorphic cells, dead edges), which the latency
   predictor cannot tell apart either. Once :data:`LEVEL_MISSES` of a level were measured
   over the budget, the level waits while a candidate of an untried level has at least
   :data:`MIN_CHANCE` to fit (one miss may be that member's own cost; a second says the
   level is over the budget on this device); on a device that reports whole milliseconds
   (:func:`reading_step`) a candidate fits when its reading is at most the budget, i.e.
   its true latency is under the budget plus half a millisecond;
3. every measurement is stored with the device's measurements (role ``verify``) and the
   predictor refitted on them before the next choice, and with the study (a study user
   attribute per measured trial: Optuna refuses to change a finished trial);
4. :func:`nas.search.runner.search` spends the first half of ``K`` this way, then searches
   again with the refitted predictor, its margin set by the bias measured near the edge
   (:func:`edge_bias`, which also corrects the chances) less two re-estimated predictor
   errors (:func:`nas.search.runner.edge_margin`: the worse the first predictions were,
   the further over the budget it looks), its sampler trained on the first search's
   accuracies (it evaluates none of those archs again), and spends the rest over the
   candidates of *both* searches;
5. the recommendation is the most accurate arch *measured* to fit. If none fits (or the
   device cannot be reached), the most accurate arch that fits by prediction with the
   usual safety margin is recommended and marked unverified.

Archs of the study already measured (profile networks, an earlier verification) count
as measured and cost nothing. The measuring side is a :class:`DeviceLoop`; the
benchmarks plug a measured table in its place.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from nas.errors import EdgenasError

SAFE = 0.95
"""An arch that fits with at least this probability (by prediction) counts as a safe pick."""
MIN_CHANCE = 0.01
"""Candidates less likely than this to fit are never measured."""
PRIOR_WEIGHT = 2.0
"""The predictor's validation error counts as this many measured residuals when the
error is re-estimated from the verified archs."""
LEVEL_MISSES = 2
"""After this many candidates of one accuracy level are measured over the budget, the level
waits until no likely-enough candidate of an untried level is left (see :func:`_choose`)."""
MAX_BAND = 0.15
"""Cap of the band above the budget that a verified search explores."""
MAX_EDGE_BAND = 0.5
"""Cap of the band above the budget that the second search of a verification explores
(its margin's floor is ``-MAX_EDGE_BAND``)."""


@dataclass(frozen=True)
class Measured:
    """One network measured on a device: median latency, spread, energy where metered."""

    latency_ms: float
    spread_ms: float = 0.0
    energy_mj: float | None = None
    how: dict[str, Any] = field(default_factory=dict)


class DeviceLoop(Protocol):
    """What verification needs from a device: what is measured, measure more, refit."""

    name: str

    def known(self) -> dict[str, float]:
        """Measured latency (ms) of every whole network stored for the device, by arch key."""
        ...

    def measure(self, arch: Any) -> Measured:
        """Measure ``arch`` on the device and store it with the device's measurements."""
        ...

    def refit(self) -> Any:
        """The device's cost (a :class:`~nas.search.costs.DeviceCost`) refitted on every
        stored measurement."""
        ...


class DeviceUnreachable(EdgenasError):
    """The device a verification needs cannot be reached (the search result still stands)."""


def exploration_band(devices: Sequence[Any]) -> float:
    """How far over the budget (relative) a verified search explores: two predictor
    errors (largest over devices), at most :data:`MAX_BAND`, 10 % without figures."""
    errors = [d.latency_error for d in devices]
    if any(e is None for e in errors):
        return 0.10
    return round(min(MAX_BAND, 2.0 * max(errors, default=0.05)), 4)


def check_verifiable(problem: Any) -> None:
    """Refuse ``--verify`` before the search when it cannot work (one line each)."""
    other = [m for m in problem.spec.budget.latency_limits() if m != "latency_ms"]
    if other:
        raise EdgenasError(f"--verify measures one latency (latency_ms); this search budgets {', '.join(other)}: "
                           "drop --verify and measure the pick with `edgenas finetune` (it measures every metric)")
    if problem.spec.budget.max_latency_ms is None:
        raise EdgenasError("--verify measures candidates against a latency budget: add --max-latency-ms")
    for d in problem.devices:
        if d.describe().get("kind") == "nb201-table":
            raise EdgenasError(f"--verify: {d.name} is a measured table, its latencies are exact already; "
                               "drop --verify")


@dataclass
class Candidate:
    key: str
    trial: Any
    arch: Any
    accuracy: float


@dataclass
class Verification:
    """What a verification did: the measured candidates, the recommendation and its status."""

    status: str  # verified | none-fits | unreachable | interrupted | nothing-to-measure
    requested: int
    records: list[dict[str, Any]]
    recommended: Any | None  # the recommended trial
    recommended_measured: dict[str, float] | None
    message: str = ""
    measurements: int = 0
    measured_trials: list[Any] = field(default_factory=list)
    """The trial of each record, in order (which study a record belongs to, when the
    candidates came from more than one)."""

    @property
    def verified(self) -> bool:
        return self.recommended_measured is not None


def verify_search(problem: Any, trials: Sequence[Any], loops: dict[str, DeviceLoop], k: int,
                  fallback_margin: float, log: Callable[[str], None] = lambda _m: None) -> Verification:
    """Measure up to ``k`` candidates of ``trials`` near the budget (see the module docstring).

    ``loops`` maps each device of the search to its :class:`DeviceLoop`;
    ``fallback_margin`` is the safety margin of the unverified fallback pick.
    """
    budget = float(problem.spec.budget.max_latency_ms)
    cands = _candidates(problem, trials)
    costs = {d.name: d for d in problem.devices}
    sigma0 = {n: _sigma(costs[n].latency_error) for n in loops}
    residuals: dict[str, list[float]] = {n: [] for n in loops}
    known = {n: loop.known() for n, loop in loops.items()}
    # a reading fits when it is at most the budget: on a device that reports whole
    # milliseconds, that is any true latency under the budget plus half a step
    edge = {n: budget + reading_step(known[n].values()) / 2.0 for n in loops}
    measured: dict[str, dict[str, float]] = {}
    for c in cands:
        have = {n: known[n][c.key] for n in loops if c.key in known[n]}
        if len(have) == len(loops):
            measured[c.key] = have
    records: list[dict[str, Any]] = []
    measured_trials: list[Any] = []
    spent, status, message = 0, "verified", ""
    archs = [c.arch for c in cands]
    for step in range(k):
        pred = {n: np.asarray(costs[n].predict_latency_ms(archs), dtype=float) for n in loops}
        for n in loops:  # the predictor's bias at the edge, from the candidates measured so far
            pred[n] = pred[n] * math.exp(edge_bias(pred[n], [measured.get(c.key, {}).get(n) for c in cands]))
        sig = {n: _updated(sigma0[n], residuals[n]) for n in loops}
        log_chance = np.zeros(len(cands))
        for n in loops:
            log_chance += _log_fit_probability(pred[n], edge[n], sig[n])
        chance = np.exp(log_chance)
        acc = np.array([c.accuracy for c in cands])
        fits = [i for i, c in enumerate(cands) if c.key in measured and _fits(measured[c.key], budget)]
        incumbent = max((acc[i] for i in fits), default=None)
        misses = Counter(c.accuracy for c in cands if c.key in measured and not _fits(measured[c.key], budget))
        i = _choose(acc, log_chance, incumbent, [c.key in measured for c in cands], last=step == k - 1,
                    tried=[misses[c.accuracy] >= LEVEL_MISSES for c in cands])
        if i is None:
            if step == 0:
                status, message = "nothing-to-measure", "no candidate is likely to fit the budget"
            break
        c = cands[i]
        before = {n: float(pred[n][i]) for n in loops}
        got: dict[str, float] = {}
        how: dict[str, Any] = {}
        try:
            for n, loop in loops.items():
                m = loop.measure(c.arch)
                got[n] = m.latency_ms
                how[n] = m.how
                residuals[n].append(math.log(m.latency_ms / before[n]))
        except EdgenasError as exc:
            status, message = "interrupted", str(exc)
            log(f"verification stopped: {exc}")
            break
        spent += 1
        measured[c.key] = got
        ok = _fits(got, budget)
        measured_trials.append(c.trial)
        records.append({
            "trial": c.trial.number, "arch": problem.space.arch_to_json(c.arch), "accuracy": c.accuracy,
            "predicted": {f"latency_ms@{n}": v for n, v in before.items()},
            "measured": {f"latency_ms@{n}": v for n, v in got.items()},
            "fits": ok, "chance_predicted": round(float(chance[i]), 4), "how": how,
        })
        log(f"verify {spent}/{k}: trial {c.trial.number} accuracy {c.accuracy:.2f} | predicted "
            + ", ".join(f"{before[n]:.4g}" for n in loops) + " ms | measured "
            + ", ".join(f"{got[n]:.4g}" for n in loops) + f" ms | {'fits' if ok else 'over budget'}")
        for n, loop in loops.items():
            costs[n] = loop.refit()
    best = max((c for c in cands if c.key in measured and _fits(measured[c.key], budget)),
               key=lambda c: (c.accuracy, -c.trial.number), default=None)
    if best is not None:
        return Verification(status, k, records, best.trial, measured[best.key], message, spent, measured_trials)
    if status == "verified":
        status = "none-fits" if spent else status
        message = message or (f"none of the {spent} measured candidates fits {budget:g} ms" if spent else message)
    fallback = safe_pick(problem, trials, fallback_margin, costs)
    return Verification(status, k, records, fallback, None, message, spent, measured_trials)


def reading_step(readings: Any) -> float:
    """The step of a device's readings in ms: 1 when every one (at least 3) is a whole number
    (a device that reports whole milliseconds), else 0 (continuous)."""
    values = np.asarray(list(readings), dtype=float)
    return 1.0 if len(values) >= 3 and np.all(np.abs(values - np.round(values)) < 1e-9) else 0.0


def edge_bias(pred: np.ndarray, measured: Sequence[float | None]) -> float:
    """The mean log error (measured over predicted) of the measured candidates, shrunk
    toward 0 as if :data:`PRIOR_WEIGHT` unbiased readings were among them: a refitted
    predictor with strong priors (few-shot, a handful of networks) moves little for a few
    new rows, while the candidates just measured say how far off it is near the budget."""
    logs = [math.log(m / p) for p, m in zip(pred, measured) if m is not None and m > 0 and p > 0]
    return sum(logs) / (len(logs) + PRIOR_WEIGHT) if logs else 0.0


def unverified(problem: Any, trials: Sequence[Any], k: int, fallback_margin: float, status: str,
               message: str) -> Verification:
    """The result of a verification that could not run (``status``: why)."""
    return Verification(status, k, [], safe_pick(problem, trials, fallback_margin), None, message, 0)


def safe_pick(problem: Any, trials: Sequence[Any], margin: float, costs: dict[str, Any] | None = None) -> Any:
    """The most accurate trial whose *predicted* latency (with the refitted predictor where
    given) fits the budget shrunk by ``margin``, every other constraint met."""
    budget = problem.spec.budget.max_latency_ms
    cands = _candidates(problem, trials)
    if not cands:
        return None
    archs = [c.arch for c in cands]
    ok = np.ones(len(cands), dtype=bool)
    for d in problem.devices:
        cost = (costs or {}).get(d.name, d)
        ok &= np.asarray(cost.predict_latency_ms(archs), dtype=float) <= budget / (1.0 + margin)
    for i, c in enumerate(cands):
        other = {k: v for k, v in c.trial.constraints.items() if not k.startswith("latency_ms@")}
        ok[i] &= all(v <= 0 for v in other.values())
    picks = [c for i, c in enumerate(cands) if ok[i]]
    best = max(picks, key=lambda c: (c.accuracy, -c.trial.number), default=None)
    return None if best is None else best.trial


def choose_batch(acc: np.ndarray, chance: np.ndarray, n: int, skip: np.ndarray | None = None,
                 fill: bool = False) -> list[int]:
    """``n`` archs to measure at once (no result in between, e.g. for ``devices suggest``):
    greedily, the arch with the largest expected accuracy gain given the ones already
    picked, each of which fits with its own probability (independently), over the best
    safe arch (fits with probability :data:`SAFE`). Archs measured already (``skip``) and
    archs unlikely to fit are left out; fewer than ``n`` come back when no other arch can
    gain anything, unless ``fill``: then the rest are the most uncertain archs near the
    edge (``P(fits)(1 - P(fits))``), the more accurate first, whose measurements teach the
    predictor most where it decides."""
    acc = np.asarray(acc, dtype=float)
    chance = np.asarray(chance, dtype=float)
    todo = (chance >= MIN_CHANCE) & (~skip if skip is not None else True)
    safe = todo & (chance >= SAFE)
    floor = float(acc[safe].max()) if safe.any() else float(acc.min()) - 1.0
    picked: list[int] = []
    for _ in range(n):
        # the incumbent after the picks: each picked arch (best first) with the chance
        # that it fits and no better picked one does; the floor with what is left
        levels, left = [], 1.0
        for i in sorted(picked, key=lambda i: -acc[i]):
            if acc[i] > floor:
                levels.append((acc[i], left * chance[i]))
                left *= 1.0 - chance[i]
        levels.append((floor, left))
        gain = np.zeros(len(acc))
        for level, weight in levels:
            gain += weight * np.maximum(acc - level, 0.0)
        gain = np.where(todo, gain * chance, 0.0)
        gain[picked] = 0.0
        if not (gain > 0).any():
            break
        picked.append(int(np.argmax(gain)))
    if fill and len(picked) < n:
        span = float(acc.max() - acc.min()) or 1.0
        value = np.where(todo, 4.0 * chance * (1.0 - chance) * (0.5 + 0.5 * (acc - acc.min()) / span), -1.0)
        value[picked] = -1.0
        for i in np.argsort(-value, kind="stable")[: n - len(picked)]:
            if value[i] > 0:
                picked.append(int(i))
    return picked


def fit_probability(pred: np.ndarray, budget: float, error: float | None) -> np.ndarray:
    """Probability that archs predicted at ``pred`` ms truly fit ``budget`` (log-normal
    error with the spread of a predictor whose mean relative error is ``error``)."""
    return _fit_probability(np.asarray(pred, dtype=float), budget, _sigma(error))


def _candidates(problem: Any, trials: Sequence[Any]) -> list[Candidate]:
    """One candidate per distinct arch (its earliest trial), non-latency constraints met."""
    space = problem.space
    out: dict[str, Candidate] = {}
    for t in sorted(trials, key=lambda t: t.number):
        other = {k: v for k, v in t.constraints.items() if not k.startswith("latency_ms@")}
        if not all(v <= 0 for v in other.values()):
            continue
        arch = space.arch_from_json(t.user_attrs["arch"])
        key = space.arch_key(arch)
        if key not in out:
            out[key] = Candidate(key, t, arch, float(t.user_attrs["metrics"]["accuracy"]))
    return list(out.values())


def _sigma(error: float | None) -> float:
    """Log-normal spread from a mean relative error (MAPE ~ 0.8 sigma), at least 2 %."""
    return max(0.02, 1.25 * (0.10 if error is None else float(error)))


def posterior_error(error: float | None, readings: Sequence[tuple[float | None, float | None]]) -> float:
    """The predictor's log-normal spread near the budget: its validation ``error`` counted as
    :data:`PRIOR_WEIGHT` readings, with the log errors of ``readings`` (predicted before the
    measurement, measured) that were taken at the budget's edge."""
    logs = [math.log(m / p) for p, m in readings if p and m and p > 0 and m > 0]
    return _updated(_sigma(error), logs)


def _updated(sigma0: float, residuals: list[float]) -> float:
    return math.sqrt((PRIOR_WEIGHT * sigma0**2 + sum(r * r for r in residuals)) / (PRIOR_WEIGHT + len(residuals)))


def _fit_probability(pred: np.ndarray, budget: float, sigma: float) -> np.ndarray:
    return np.exp(_log_fit_probability(pred, budget, sigma))


def _log_fit_probability(pred: np.ndarray, budget: float, sigma: float) -> np.ndarray:
    """log P(fits): the log-normal predictive's log CDF at the budget (exact far in the tail)."""
    from scipy.stats import norm

    return norm.logcdf((math.log(budget) - np.log(np.maximum(pred, 1e-12))) / sigma)


def _fits(measured: dict[str, float], budget: float) -> bool:
    return all(v <= budget for v in measured.values())


def _choose(acc: np.ndarray, log_chance: np.ndarray, incumbent: float | None, done: list[bool],
            last: bool, tried: Sequence[bool] | None = None) -> int | None:
    """Index of the next arch to measure, or None when no unmeasured arch can beat the incumbent.

    The next one has the largest expected gain, ``(accuracy - incumbent) * P(fits)``, compared
    in logs so archs the predictor gives almost no chance still rank among themselves: the
    whole budget of measurements is spent while a more accurate arch is left (a measurement
    costs seconds, shipping a worse model than the device could run costs accuracy for
    good, and the chances come from a predictor that is least sure exactly there)."""
    todo = ~np.asarray(done, dtype=bool)
    if not todo.any():
        return None
    if incumbent is None:
        safe = todo & (log_chance >= math.log(SAFE))
        if last and safe.any():  # the last measurement must leave something verified
            return int(np.flatnonzero(safe)[np.argmax(acc[safe])])
        if last:  # nothing safe: the arch most likely to fit, the more accurate of equals
            return int(np.lexsort((-acc, -log_chance, ~todo))[0])
        floor = float(acc[safe].max()) if safe.any() else float(acc.min()) - 1.0
    else:
        floor = incumbent
    better = todo & (acc > floor)
    if not better.any():
        return int(np.lexsort((-acc, -log_chance, ~todo))[0]) if incumbent is None else None
    if tried is not None:  # an accuracy level measured over the budget waits for the untried ones
        fresh = better & ~np.asarray(tried, dtype=bool) & (log_chance >= math.log(MIN_CHANCE))
        if fresh.any():
            better = fresh
    score = np.where(better, np.log(np.maximum(acc - floor, 1e-12)) + log_chance, -np.inf)
    return int(np.argmax(score))


class StoredDevice:
    """A :class:`DeviceLoop` over the workspace's measurement store: ``measure_fn`` takes a
    measurement, which is stored as a whole network of the device (``role``) before the
    predictor is refitted on everything stored. :class:`ProfiledDevice` measures on the
    real device; the benchmarks pass a measured table."""

    def __init__(self, workspace: Any, name: str, space: Any, measure_fn: Callable[[Any], Measured],
                 role: str = "verify") -> None:
        self.workspace = workspace
        self.name = name
        self.space = space
        self.measure_fn = measure_fn
        self.role = role
        self.profile = workspace.load_profile(name, space)
        self.store = workspace.measurements()

    def _rows(self, role: str) -> list[Any]:
        p = self.profile
        return self.store.query(p.name, space=p.space["name"], role=role, backend=p.backend,
                                schedule=p.schedule_label)

    def known(self) -> dict[str, float]:
        return {m.item: m.median_ms for role in ("train", "holdout", "import", "verify") for m in self._rows(role)}

    def measure(self, arch: Any) -> Measured:
        from latency_predictors.measurements import Measurement
        from latency_predictors.tvm_profiler import tvm_version

        m = self.measure_fn(arch)
        p = self.profile
        key = self.space.arch_key(arch)
        if self.store.get(p.name, p.space["name"], self.role, key, p.backend, p.schedule_label) is None:
            self.store.add(Measurement(
                device=p.name, space=p.space["name"], role=self.role, item=key, backend=p.backend,
                schedule=p.schedule_label, target=p.target, tvm_version=tvm_version() if p.backend == "tvm" else "n/a",
                input_shape=tuple(self.space.input_shape(arch)), number=int(m.how.get("number", 1)),
                repeat=int(m.how.get("repeat", 1)), median_ms=m.latency_ms, spread_ms=m.spread_ms,
                results_ms=tuple(m.how.get("results_ms", (m.latency_ms,))), energy_mj=m.energy_mj,
                energy_method=m.how.get("energy_method") if m.energy_mj is not None else None,
            ))
        return m

    def refit(self) -> Any:
        from nas.search.costs import ProfileCost

        model = self.workspace.cost_model(self.name, self.space)
        return ProfileCost(self.name, model, model.profile.to_json())

    def finish(self) -> None:
        """Record in the profile how many networks the role now holds (so later searches,
        whose study identity includes these counts, use a new study with the new predictor)."""
        counts = dict(self.profile.counts)
        counts[self.role] = len(self._rows(self.role))
        if counts != self.profile.counts:
            self.profile.counts = counts
            self.profile.save(self.workspace.profile_path(self.name))


class ProfiledDevice(StoredDevice):
    """A device profiled with ``edgenas profile``, measured the way it was profiled
    (:func:`~latency_predictors.profilers.profiler_for_profile`: same backend, target,
    schedule, timing; reached as recorded, or at ``reach``)."""

    def __init__(self, workspace: Any, name: str, space: Any, reach: Any = None) -> None:
        super().__init__(workspace, name, space, self._measure)
        if self.profile.backend == "import" or (self.profile.reached or {}).get("kind") == "import":
            raise EdgenasError(
                f"--verify: device {name!r} was imported from a CSV, there is nothing here to measure it with; "
                f"run `edgenas devices suggest {name} --budget MS -n K --out todo.csv`, measure those archs on "
                f"the device and `edgenas devices import {name} --add --measurements todo.csv`"
            )
        self.reach = reach
        self._profiler: Any = None

    def connect(self) -> None:
        """Reach the device now (:class:`DeviceUnreachable` in one line if it cannot be)."""
        from latency_predictors.errors import InputError, ProfilingError
        from latency_predictors.profilers import profiler_for_profile

        if self._profiler is not None:
            return
        try:
            self._profiler = profiler_for_profile(self.profile, self.reach)
        except (ProfilingError, InputError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DeviceUnreachable(f"cannot reach device {self.name!r} ({first})") from None

    def _measure(self, arch: Any) -> Measured:
        from latency_predictors.errors import ProfilingError

        self.connect()
        try:
            t = self._profiler.measure(self.space.build_static(arch).eval(), tuple(self.space.input_shape(arch)))
        except (ProfilingError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DeviceUnreachable(f"measuring on device {self.name!r} failed ({first})") from None
        how = {"number": t.number, "repeat": t.repeat, "results_ms": list(t.results_ms),
               "energy_method": t.energy_method, **self._profiler.describe()}
        return Measured(t.median_ms, t.spread_ms, t.energy_mj, how)


__all__ = ["DeviceLoop", "DeviceUnreachable", "Measured", "ProfiledDevice", "StoredDevice", "Verification",
           "check_verifiable", "choose_batch", "exploration_band", "fit_probability", "reading_step",
           "safe_pick", "unverified", "verify_search"]
