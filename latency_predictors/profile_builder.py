"""The ``edgenas profile`` workflow: measure, fit, validate, store a device profile.

Every measurement is persisted as it is taken (an interrupted run resumes where it
stopped, because every item is looked up in the store before it is timed). The run:

1. **reference**: the space's smallest network is compiled once and timed
   ``reference_readings`` times; the median is its *baseline*. From then on every repeat
   of every measurement is paired with a repeat of the reference, and figures are
   ``item / reference x baseline`` (:mod:`latency_predictors.reference`): the machine's
   drift with its load cancels out (``drift_correction=False`` turns it off).
2. **blocks, networks and the noise probe, interleaved**: whole networks (``holdout``
   kept out for validation, ``train`` for the block-sum correction and the whole-network
   model) are spread over the budget, so drift hits them and the blocks alike: a network
   is timed whenever networks have used less than ``network_share`` of the time so far
   (they cost several blocks each: compiling a network is mostly torch's export); between
   them, blocks are timed adaptively: the blocks of ``pool_archs`` sampled
   networks form the pool, a seed set (the smallest and largest networks' blocks plus a
   few random ones) first, then rounds where a committee of regressors disagrees most,
   weighted by frequency and cost (:mod:`latency_predictors.sampling`), until the error
   left is below ``stop_error`` of an average network or time runs out. The first
   held-out network is the **noise probe**: timed again ``noise_repeats`` times spread
   over the run; their spread is the noise floor.
3. **fit and validate** both predictors on the held-out networks; the profile records
   both, the noise floor as figures (CV, max deviation, drift range) and the plan.

``budget_minutes`` bounds the run; at least 2 held-out and 3 training networks are
measured whatever it is (fewer cannot be validated or fitted). Without an explicit
``holdout`` the count follows the budget (one per two minutes, 3 to 10) and the profile says so
in ``plan["notes"]``. Local untuned TVM compiles each distinct kernel once
(:class:`~latency_predictors.kernel_cache.KernelCache`), so whole networks whose blocks
were timed compile in a fraction of the time; ``plan["time"]`` says where time went.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from latency_predictors.cost_metrics import (
    LatencyMetric,
    block_timing_input,
    default_metric,
    latency_metrics,
)
from latency_predictors.device_profile import (
    DeviceProfile,
    fit_cost_model,
    measurements_for,
    validate_device_name,
)
from latency_predictors.drift_exponent import choose_exponent
from latency_predictors.errors import InputError
from latency_predictors.machine_state import StateGate, fast_threshold, in_state
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.metrics import validation_figures
from latency_predictors.reference import Reference, ReferencedProfiler
from latency_predictors.sampling import expected_errors
from latency_predictors.timing import ExampleInput, Profiler, TimerFn, Timing, input_shape_of
from latency_predictors.tvm_profiler import tvm_version
from search_spaces import BlockSpec, SearchSpace

MIN_HOLDOUT = 2
MIN_TRAIN = 3
MAX_RETAKES = 3
"""Times a block or network the state gate could not time in the machine's fast state is
timed again (a retake that is still not in the fast state is queued again, up to this)."""
RESCAN_S = 60.0
"""How often (seconds) the stored measurements are checked against the fast level the gate
has settled on, while the machine reads fast (see :meth:`ProfileBuilder._queue_stored_slow`)."""


@dataclass(frozen=True)
class ProfilePlan:
    """How much to measure. ``holdout``/``train`` ``None``: chosen from the budget
    (:meth:`holdout_count`, :meth:`train_count`)."""

    budget_minutes: float = 20.0
    noise_repeats: int = 8
    reference_readings: int = 5
    holdout: int | None = None
    train: int | None = None
    pool_archs: int = 400
    seed_blocks: int = 24
    round_size: int = 8
    max_blocks: int | None = None
    stop_error: float = 0.005
    seed: int = 0
    drift_correction: bool = True
    network_share: float = 0.4
    max_train: int = 48

    def __post_init__(self) -> None:
        if self.budget_minutes <= 0:
            raise InputError(f"--budget-minutes must be positive, got {self.budget_minutes}")
        sizes = (self.noise_repeats, self.reference_readings, self.pool_archs, self.round_size,
                 self.holdout or 0, self.train or 0)
        if min(sizes) < 0:
            raise InputError("profile plan sizes must be non-negative")
        if self.drift_correction and self.reference_readings < 1:
            raise InputError("drift correction needs at least one reference reading")
        if not 0 < self.network_share <= 1:
            raise InputError(f"network_share must be in (0, 1], got {self.network_share}")

    def holdout_count(self) -> tuple[int, str | None]:
        """Held-out networks, and a note when the budget made them fewer than 10."""
        if self.holdout is not None:
            return self.holdout, None
        n = min(10, max(3, round(self.budget_minutes / 2)))
        if n == 10:
            return n, None
        return n, (f"{n} held-out networks (not 10) because the budget is {self.budget_minutes:g} minutes: "
                   "validation figures on so few are rough; give --holdout N or a longer --budget-minutes")

    def train_count(self) -> int:
        """Training networks planned for the whole-network correction: 12, fewer for short
        budgets. When ``train`` is not given and the plan is measured with budget left, more
        are measured until the budget or ``max_train`` is reached (:meth:`ProfileBuilder.
        _extra_networks`)."""
        return self.train if self.train is not None else min(12, max(4, round(2 * self.budget_minutes)))


class _Clock:
    def __init__(self, minutes: float) -> None:
        self.start = time.monotonic()
        self.limit = minutes * 60

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.limit - self.elapsed()

    def fraction(self) -> float:
        return self.elapsed() / self.limit


@dataclass
class ProfileBuilder:
    """Builds (or resumes) the profile ``profile`` with ``profiler`` into ``store``.

    ``profile`` carries the identity (name, space, target, how reached, schedule);
    ``space`` is the space it describes; ``profiles_dir`` is where the JSON goes.
    """

    profile: DeviceProfile
    space: SearchSpace
    profiler: Profiler
    store: MeasurementStore
    profiles_dir: Path
    plan: ProfilePlan = ProfilePlan()
    progress: bool = True
    log: Callable[[str], None] = print

    def run(self) -> DeviceProfile:
        validate_device_name(self.profile.name)  # before minutes of measuring, not at the save
        clock = _Clock(self.plan.budget_minutes)
        rng = random.Random(self.plan.seed)
        space = self.space
        n_holdout, note = self.plan.holdout_count()
        n_train = self.plan.train_count()
        holdout = unique_archs(space, random.Random(rng.random()), n_holdout)
        train = unique_archs(space, random.Random(rng.random()), n_train, exclude=holdout)
        self._metrics = latency_metrics(space)
        self._default = default_metric(space)
        pool, freq = _block_pool(space, random.Random(rng.random()), self.plan.pool_archs, self._metrics)
        self._extra_rng = random.Random(rng.random())  # drawn last: the planned networks do not change
        self._planned = holdout + train
        self._extra: set[tuple[str, str]] = set()
        self.profile.plan = {"budget_minutes": self.plan.budget_minutes, "holdout": len(holdout),
                             "holdout_from_budget": note is not None, "train": len(train),
                             "pool_blocks": len(pool), "notes": [note] if note else []}
        if note:
            self.log(note)
        networks = _per_metric(_interleave(holdout, train), self._metrics, self._default)
        total = self.plan.reference_readings + self.plan.noise_repeats + len(networks) + len(pool)
        with tqdm(total=total, desc=f"profile {self.profile.name}", unit="meas", disable=not self.progress) as bar:
            self._bar = bar
            self._reference(space)
            self._probe: TimerFn | None = None
            self._retakes: list[tuple[str, Any]] = []  # (role, arch) or ("block", BlockSpec)
            self._attempts: Counter[tuple[str, str]] = Counter()  # retakes per (role, item)
            self._measure_all(space, networks, pool, freq, clock)
        self.profile.build_seconds = round(self._previous_seconds() + clock.elapsed(), 1)
        stats = getattr(self.profiler, "stats", None)
        if stats is not None:
            self.profile.plan["time"] = {**stats.to_json(), "wall_seconds_this_run": round(clock.elapsed(), 1)}
        return self.finish(space)

    def _previous_seconds(self) -> float:
        """Time spent by earlier, interrupted runs of this profile (from its saved JSON)."""
        path = self.profiles_dir / f"{self.profile.name}.json"
        if not path.is_file():
            return 0.0
        try:
            return float(DeviceProfile.load(path).build_seconds or 0.0)
        except (ValueError, TypeError):
            return 0.0

    # --- phases -----------------------------------------------------------------
    def _reference(self, space: SearchSpace) -> None:
        """Wrap the profiler with the reference network and calibrate its baseline (or
        read the baseline back from the store when resuming)."""
        if not self.plan.drift_correction or isinstance(self.profiler, ReferencedProfiler):
            return
        arch = space.smallest()
        key = space.arch_key(arch)
        example = self._default.timing_input(space, arch)
        referenced = ReferencedProfiler(self.profiler, self._default.build(space, arch), example, item=key)
        wait = referenced.timing.state_wait_s
        gate = referenced.gate = StateGate(state_wait_s=wait) if wait > 0 else None
        items = [f"{key}#{i}" for i in range(self.plan.reference_readings)]
        done = self._existing("reference")
        self._bar.set_postfix_str("reference")
        for item in items:
            if item not in done:
                self._save("reference", item, example, referenced.time_reference())
            self._bar.update(1)
        readings = [m.median_ms for m in self._query("reference") if m.item in items]
        if gate is not None:  # resuming: the fast level of everything measured so far
            gate.observe(self._reference_readings())
        referenced.baseline_ms = float(np.median(readings))
        self.profile.reference = Reference(key, referenced.baseline_ms, len(readings)).to_json()
        self.profiler = referenced  # type: ignore[assignment]

    def _measure_all(self, space: SearchSpace, networks: list[tuple[str, Any]], pool: list[BlockSpec],
                     freq: list[float], clock: _Clock) -> None:
        """Networks whenever they have had less than ``network_share`` of the time, blocks
        between them, the noise probe at evenly spaced times, until the budget is spent
        (and the minimums are measured)."""
        done = {role: self._existing(role) for role in dict.fromkeys(r for r, _ in networks)}
        todo = [(r, a) for r, a in networks if space.arch_key(a) not in done[r]]
        self._bar.update(len(networks) - len(todo))
        blocks = self._block_order(pool, freq)
        noise_items = self._noise_items(space, networks)
        self._probe_key = space.arch_key(networks[0][1]) if noise_items else None
        noise_done = self._existing("noise")
        self._bar.update(len([i for i in noise_items if i in noise_done]))
        noise_todo = [i for i in noise_items if i not in noise_done]
        self._queue_stored_slow(space, list(done))
        self._rescanned = time.monotonic()
        start, network_seconds = clock.elapsed(), 0.0
        blocks_left = True
        while True:
            taken = len(noise_items) - len(noise_todo)
            if noise_todo and clock.fraction() >= taken / len(noise_items) and self._probe_ready(space, networks, done):
                self._retime_probe(space, networks[0][1], noise_todo.pop(0))
                continue
            if clock.left() > 0 and self._machine_fast() and (self._retakes or self._rescan(space, list(done))):
                self._retake_next(space)  # the fast state is when a retake can succeed: use it first
                continue
            need = {r for r in done if len(done[r]) < (MIN_HOLDOUT if r.endswith("holdout") else MIN_TRAIN)}
            if clock.left() <= 0:
                todo = [(r, a) for r, a in todo if (r, space.arch_key(a)) not in self._extra]  # beyond the plan
                if not any(r in need for r, _ in todo):
                    if todo:
                        note = (f"budget reached with {len(todo)} of {len(networks)} planned networks unmeasured "
                                f"({sum(r.endswith('train') for r, _ in todo)} training, "
                                f"{sum(r.endswith('holdout') for r, _ in todo)} held-out); a longer --budget-minutes "
                                "resumes and measures them")
                        self.profile.plan["notes"].append(note)
                        self.log(note)
                    self._note_not_retaken()
                    break
                role, arch = _pop_first(todo, need)
            elif todo and (network_seconds <= self.plan.network_share * (clock.elapsed() - start) or not blocks_left):
                role, arch = todo.pop(0)
            elif blocks_left:
                blocks_left = next(blocks, False)
                continue
            elif self._retakes:
                self._retake_next(space)  # the machine is slow: the retake's gate waits for the fast state
                continue
            elif self._queue_stored_slow(space, list(done)):
                continue  # measured before the fast level settled, and outside it by now
            elif extra := self._extra_networks(space, done):
                todo.extend(extra)
                self._bar.total += len(extra)
                continue
            else:
                break
            t0 = clock.elapsed()
            self._network(space, role, arch)
            network_seconds += clock.elapsed() - t0
            done[role].add(space.arch_key(arch))
        while noise_todo and clock.left() > 0 and self._probe_ready(space, networks, done):
            self._retime_probe(space, networks[0][1], noise_todo.pop(0))  # blocks and networks ended early

    def _extra_networks(self, space: SearchSpace, done: dict[str, set[str]]) -> list[tuple[str, Any]]:
        """One more training network (in every metric's phase) once the plan is measured and
        the block predictor has converged with budget left: the whole-network correction is
        what a short plan leaves least certain (a gpt profile with 8 training networks put 16 %
        of never-seen decode networks outside ±10 %, with 20 none), so the budget buys more of
        them, up to ``max_train``. Not when ``train`` was given (then it is exactly that)."""
        role = self._default.role("train")
        if self.plan.train is not None or len(done.get(role, ())) >= self.plan.max_train:
            return []
        measured = [space.arch_from_json(k) for r in done for k in done[r]]
        arch = unique_archs(space, self._extra_rng, 1, exclude=self._planned + measured)
        if not arch:
            return []
        extra = [(m.role("train"), arch[0]) for m in self._metrics]
        self._extra.update((r, space.arch_key(a)) for r, a in extra)
        return extra

    def _metric_of(self, role: str) -> LatencyMetric:
        return next(m for m in self._metrics if m.role(role.rpartition(":")[2]) == role)

    def _network(self, space: SearchSpace, role: str, arch: Any, retake: bool = False) -> None:
        """Time one whole network and store it. One the state gate could not time in the
        machine's fast state (a block too) is queued to be timed again: as soon as the
        machine reads fast again (blocks first), or when the plan is measured and the blocks
        are done (before extra training networks); a retake in the fast state replaces it."""
        self._bar.set_postfix_str(role + (" (retake)" if retake else ""))
        metric = self._metric_of(role)
        example = metric.timing_input(space, arch)
        timer = self.profiler.prepare(metric.build(space, arch), example)
        timing = timer()
        if retake:
            self._save_retake(role, arch, space.arch_key(arch), example, timing)
            return
        self._save(role, space.arch_key(arch), example, timing)
        self._queue_if_slow(timing, (role, arch))
        if role == "holdout" and self._probe is None and space.arch_key(arch) == self._probe_key:
            self._probe = timer  # the first held-out network is the noise probe
        self._bar.update(1)

    def _machine_fast(self) -> bool:
        """Whether the state gate's latest reading of the reference was in the fast state."""
        gate = getattr(self.profiler, "gate", None)
        return gate is not None and bool(gate.readings) and gate.is_fast(gate.readings[-1])

    def _retake_next(self, space: SearchSpace) -> None:
        """Time again the first queued block (a block's error reaches every network that has
        it), else the first queued network."""
        i = next((i for i, (role, _) in enumerate(self._retakes) if role == "block"), 0)
        role, what = self._retakes.pop(i)
        if role == "block":
            self._retake_block(what)
        else:
            self._network(space, role, what, retake=True)

    def _rescan(self, space: SearchSpace, roles: list[str]) -> bool:
        """:meth:`_queue_stored_slow` at most every :data:`RESCAN_S` seconds (a profile whose
        block phase runs to the end of its budget never reaches the check after the plan)."""
        if time.monotonic() - self._rescanned < RESCAN_S:
            return False
        self._rescanned = time.monotonic()
        return self._queue_stored_slow(space, roles)

    def _queue_stored_slow(self, space: SearchSpace, roles: list[str]) -> bool:
        """Queue the stored blocks and networks that are not in the machine's fast state by
        their own reference readings and the fast level *now*: an earlier run's (resuming),
        and this run's taken before the fast level settled (the first measurements are
        gated by a level from few readings, or none). Not those retaken
        :data:`MAX_RETAKES` times already. Whether any was queued."""
        gate = getattr(self.profiler, "gate", None)
        fast = gate.fast_ms if gate is not None else None
        if fast is None:
            return False
        queued = {(role, self._retake_key(space, role, what)) for role, what in self._retakes}
        before = len(self._retakes)
        for role in ["block", *roles]:
            for m in self.store.query(self.profile.name, space=self.profile.space["name"], role=role,
                                      backend=self.profile.backend, schedule=self.profile.schedule_label):
                if ((role, m.item) in queued or self._attempts[role, m.item] >= MAX_RETAKES or not m.reference_ms
                        or in_state(m.reference_ms, fast) is not None):
                    continue
                what = BlockSpec.from_json(json.loads(m.item)) if role == "block" else space.arch_from_json(m.item)
                self._retakes.append((role, what))
                self._bar.total += 1
        return len(self._retakes) > before

    @staticmethod
    def _retake_key(space: SearchSpace, role: str, what: Any) -> str:
        return what.key() if role == "block" else space.arch_key(what)

    def _note_not_retaken(self) -> None:
        """Say (in the plan's notes) what the budget left measured outside the fast state."""
        if not self._retakes:
            return
        blocks = sum(role == "block" for role, _ in self._retakes)
        note = (f"budget reached with {len(self._retakes)} measurements ({blocks} blocks) not timed in the machine's "
                "fast state: their figures are drift corrected, less exact; `edgenas profile` again with a longer "
                "--budget-minutes times them again")
        self.profile.plan["notes"].append(note)
        self.log(note)

    def _retake_block(self, block: BlockSpec) -> None:
        """A block first timed outside the machine's fast state, timed again (see
        :meth:`_network`); replaced if the retake was in the fast state."""
        self._bar.set_postfix_str("block (retake)")
        timing = self.profiler.prepare(self.space.build_block(block), block_timing_input(self.space, block))()
        self._save_retake("block", block, block.key(), block.in_shape, timing)

    def _save_retake(self, role: str, what: Any, item: str, shape: ExampleInput, timing: Timing) -> None:
        """Count a retake, and let it replace the stored measurement if it was in the fast
        state; else queue it again (up to :data:`MAX_RETAKES` retakes of one item)."""
        self.profile.plan["retaken"] = self.profile.plan.get("retaken", 0) + 1
        self._attempts[role, item] += 1
        if not self._not_in_state(timing):
            self._save(role, item, shape, timing, replace_existing=True)
        elif self._attempts[role, item] < MAX_RETAKES:
            self._retakes.append((role, what))
            self._bar.total += 1
        self._bar.update(1)

    def _queue_if_slow(self, timing: Timing, retake: tuple[str, Any]) -> None:
        """Queue ``retake`` (``(role, arch)`` or ``("block", BlockSpec)``) when ``timing`` was
        not taken in the machine's fast state."""
        if self._not_in_state(timing):
            self._retakes.append(retake)
            self._bar.total += 1

    def _not_in_state(self, timing: Timing) -> bool:
        """Whether the state gate is on and ``timing`` has too few fast-state repeats."""
        gate = getattr(self.profiler, "gate", None)
        return gate is not None and bool(timing.reference_ms) and in_state(timing.reference_ms, gate.fast_ms) is None

    def _noise_items(self, space: SearchSpace, networks: list[tuple[str, Any]]) -> list[str]:
        if not networks or networks[0][0] != "holdout":
            return []
        key = space.arch_key(networks[0][1])
        return [f"{key}#{i}" for i in range(self.plan.noise_repeats)]

    def _probe_ready(self, space: SearchSpace, networks: list[tuple[str, Any]], done: dict[str, set[str]]) -> bool:
        return bool(networks) and space.arch_key(networks[0][1]) in done["holdout"]

    def _retime_probe(self, space: SearchSpace, arch: Any, item: str) -> None:
        self._bar.set_postfix_str("noise probe")
        example = self._default.timing_input(space, arch)
        if self._probe is None:  # resumed after the probe was measured: compile it again
            self._probe = self.profiler.prepare(self._default.build(space, arch), example)
        self._save("noise", item, example, self._probe())
        self._bar.update(1)

    def _block_order(self, pool: list[BlockSpec], freq: list[float]) -> Iterator[bool]:
        """Times one block per ``next`` (yielding ``True``): the seed set, then adaptive
        rounds; ends when the predictor has converged, the pool is done or ``max_blocks``
        is reached."""
        measured = {m.item: m.median_ms for m in self._query("block")}
        todo = [i for i, b in enumerate(pool) if b.key() not in measured]
        self._bar.update(len(pool) - len(todo))
        queue = self._seed_blocks(pool, todo)
        many = getattr(self.profiler, "prepare_many", None)
        while todo:
            if not queue:
                queue = self._next_round(pool, freq, measured, todo)
                if not queue:
                    return
            room = len(queue) if self.plan.max_blocks is None else self.plan.max_blocks - len(measured)
            if room <= 0:
                self.log(f"block phase stopped at --max-blocks {self.plan.max_blocks} of {len(pool)} blocks")
                return
            # compiled a round at a time: one torch export for all of them (see to_relax_many)
            batch, queue = queue[: min(max(self.plan.round_size, 1), room)], queue[min(max(self.plan.round_size, 1), room):]
            self._bar.set_postfix_str("blocks")
            items = [(self.space.build_block(pool[i]), block_timing_input(self.space, pool[i])) for i in batch]
            timers = many(items) if many else [self.profiler.prepare(m, shape) for m, shape in items]
            for i, timer in zip(batch, timers):
                self._bar.set_postfix_str("blocks")
                block = pool[i]
                timing = timer()
                self._save("block", block.key(), block.in_shape, timing)
                self._queue_if_slow(timing, ("block", block))
                measured[block.key()] = timing.median_ms
                todo.remove(i)
                self._bar.update(1)
                yield True

    def _next_round(
        self, pool: list[BlockSpec], freq: list[float], measured: dict[str, float], todo: list[int]
    ) -> list[int]:
        """The blocks to time next, or none once the error they could still add to an
        average network is below ``plan.stop_error`` (relative)."""
        known = [(b, f) for b, f in zip(pool, freq) if b.key() in measured]
        errors, cost = expected_errors(
            [b for b, _ in known], [measured[b.key()] for b, _ in known],
            [pool[i] for i in todo], [freq[i] for i in todo], random_state=self.plan.seed,
        )  # fmt: skip
        # each metric's blocks against its own average network: a decode network costs a
        # fraction of a prefill one, and must converge as well
        owner = [_owner(self._metrics, pool[i]) for i in todo]
        average_net = {}
        for k in range(len(self._metrics)):
            average_net[k] = sum(f * measured[b.key()] for b, f in known if _owner(self._metrics, b) == k) + float(
                sum(c * freq[i] for c, i, o in zip(cost, todo, owner) if o == k))
        rel = np.asarray([e / average_net[o] if average_net[o] > 0 else e for e, o in zip(errors, owner)])
        left = {self._metrics[k].name: float(rel[[o == k for o in owner]].sum()) for k in average_net}
        if max(left.values()) < self.plan.stop_error:
            figures = ", ".join(f"{100 * v:.2f} % of a {n} network" for n, v in left.items()) if len(left) > 1 \
                else f"{100 * next(iter(left.values())):.2f} % of a network"
            self.log(f"block predictor converged after {len(known)} of {len(pool)} blocks (estimated error left {figures})")
            return []
        return [todo[j] for j in np.argsort(-rel)[: self.plan.round_size]]

    def _seed_blocks(self, pool: list[BlockSpec], todo: list[int]) -> list[int]:
        keys = {b.key() for a in (self.space.smallest(), self.space.largest()) for m in latency_metrics(self.space)
                for b in m.blocks(self.space, a)}
        first = [i for i in todo if pool[i].key() in keys]
        rest = [i for i in todo if i not in first]
        random.Random(self.plan.seed).shuffle(rest)
        return first + rest[: max(0, self.plan.seed_blocks - len(first))]

    # --- fitting ------------------------------------------------------------------
    def noise_floor(self) -> dict[str, Any]:
        """The noise probe's spread (CV and max deviation of its readings, corrected and
        as timed) and the machine's drift over the profile (range of the reference's
        readings relative to its baseline, over every measurement)."""
        noise = self._query("noise")
        out: dict[str, Any] = {"n": len(noise)}
        if len(noise) >= 2:
            medians = np.asarray([m.median_ms for m in noise])
            out.update(median_ms=float(np.median(medians)), **_spread(medians))
            raw = np.asarray([np.median(m.results_ms) for m in noise])
            if any(m.reference_ms for m in noise):
                out["uncorrected_cv_pct"] = _spread(raw)["cv_pct"]
        reference = Reference.from_json(self.profile.reference)
        if reference is not None:
            drift = [float(np.median(m.reference_ms)) / reference.baseline_ms
                     for role in self._drift_roles() for m in self._query(role) if m.reference_ms]
            if drift:
                out["drift_range_pct"] = 100 * (max(drift) - min(drift))
                out["drift_min"], out["drift_max"] = min(drift), max(drift)
        if reference is not None:
            out["exponent"] = reference.exponent
        if reference is not None and reference.fast_ms is not None:
            paired = [m for role in self._drift_roles() for m in self._query(role) if m.reference_ms]
            readings = np.concatenate([np.asarray(m.reference_ms, dtype=float) for m in paired]) if paired else np.zeros(0)
            out["state"] = {
                "fast_ms": reference.fast_ms,
                "slow_readings_pct": 100 * float(np.mean(readings > reference.fast_ms)) if readings.size else 0.0,
                "not_in_state": sum(in_state(m.reference_ms, reference.fast_ms) is None for m in paired),
                "measurements": len(paired),
                "how": "fast_ms: highest reference reading counted as the machine's fast state; slow_readings_pct: "
                       "paired reference readings above it; not_in_state: measurements with too few fast-state "
                       "repeats, figured from every repeat (drift corrected)",
            }
        out["how"] = ("one held-out network timed again at evenly spaced times over the profile: CV and max "
                      "deviation of its readings" + (", drift corrected with the profile's exponent; drift range: "
                      "how far the reference network's speed moved over all measurements" if reference else ""))
        return out

    def _reference_readings(self) -> list[float]:
        """Every reading of the reference in this profile: its calibration repeats and the
        reading paired with each repeat of every measurement."""
        out = [r for m in self._query("reference") for r in m.results_ms]
        for role in self._drift_roles():
            out.extend(r for m in self._query(role) for r in m.reference_ms)
        return out

    def _fast_state(self, reference: Reference) -> Reference:
        """The profile's fast-state threshold from all of its reference readings, and the
        baseline moved to the median fast-state reading (so figures are fast-state
        latencies, whatever state the calibration happened to be timed in)."""
        readings = np.asarray(self._reference_readings(), dtype=float)
        fast = fast_threshold(readings)
        if fast is None:
            return reference
        return replace(reference, fast_ms=fast, baseline_ms=float(np.median(readings[readings <= fast])))

    def _drift_roles(self) -> list[str]:
        """Every role whose measurements were paired with the reference (all metrics')."""
        nets = [m.role(r) for m in latency_metrics(self.space) for r in ("train", "holdout")]
        return ["block", *nets, "noise"]

    def finish(self, space: SearchSpace) -> DeviceProfile:
        """Fit both predictors of every metric, validate them on the holdout, save the
        profile JSON (``validation``: the primary metric's figures; ``metric_validation``:
        every metric's, when the space has several)."""
        profile = self.profile
        metrics = latency_metrics(space)
        roles = ["block"] + [m.role(r) for m in metrics for r in ("train", "holdout")] + ["noise", "reference"]
        profile.counts = {role: len(self._query(role)) for role in dict.fromkeys(roles)}
        if "train" in profile.plan:
            profile.plan["extra_train"] = max(0, profile.counts[default_metric(space).role("train")] - profile.plan["train"])
        reference = Reference.from_json(profile.reference)
        if reference is not None and getattr(self.profiler, "gate", None) is not None:
            reference = self._fast_state(reference)  # before anything reads a corrected figure
            profile.reference = reference.to_json()
        if reference is not None:
            exponent, chosen_by = choose_exponent(profile, self.store, space)
            profile.reference = replace(reference, exponent=exponent, chosen_by=chosen_by).to_json()
        profile.noise_floor = self.noise_floor()
        corrected = (f", drift corrected by the reference network with exponent {profile.reference['exponent']:g}"
                     if profile.reference else "")
        by_metric: dict[str, dict[str, Any]] = {m.name: {} for m in metrics}
        for kind in ("block_sum", "whole_network"):
            profile.predictor = kind
            try:
                model = fit_cost_model(profile, self.store, space=space)
            except ValueError as exc:
                for figures in by_metric.values():
                    figures[kind] = {"error": str(exc)}
                continue
            for metric in metrics:
                holdout = self._query(metric.role("holdout"))
                if len(holdout) < 2:
                    continue
                archs = [space.arch_from_json(m.item) for m in holdout]
                pred = model.predict(archs)[metric.name]
                figures = validation_figures([m.median_ms for m in holdout], pred)
                what = "" if metric.phase is None else f" ({metric.name}: {metric.phase} phase)"
                figures["how"] = (
                    f"{len(holdout)} random whole networks{what} never used for fitting, compiled and "
                    f"timed end to end ({profile.backend}, {profile.schedule_label}, median of repeats{corrected})"
                )
                by_metric[metric.name][kind] = figures
        profile.validation = by_metric[metrics[0].name]
        profile.metric_validation = by_metric if len(metrics) > 1 else {}
        profile.predictor = "block_sum" if profile.counts["block"] else "whole_network"
        profile.tvm_version = tvm_version()
        profile.save(self.profiles_dir / f"{profile.name}.json")
        return profile

    # --- store helpers ------------------------------------------------------------
    def _query(self, role: str) -> list[Measurement]:
        return measurements_for(self.profile, self.store, role)

    def _existing(self, role: str) -> set[str]:
        return {m.item for m in self._query(role)}

    def _save(self, role: str, item: str, shape: ExampleInput, timing: Timing, replace_existing: bool = False) -> None:
        p = self.profile
        self.store.add(
            Measurement(
                device=p.name,
                space=p.space["name"],
                role=role,
                item=item,
                backend=p.backend,
                schedule=p.schedule_label,
                target=p.target,
                tvm_version=tvm_version() if p.backend == "tvm" else "n/a",
                input_shape=input_shape_of(shape),
                number=timing.number,
                repeat=timing.repeat,
                median_ms=timing.median_ms,
                spread_ms=timing.spread_ms,
                results_ms=timing.results_ms,
                energy_mj=timing.energy_mj,
                energy_method=timing.energy_method,
                reference_ms=timing.reference_ms,
            ),
            replace_existing=replace_existing,
        )


def _spread(values: np.ndarray) -> dict[str, float]:
    rel = np.abs(values - np.median(values)) / np.median(values)
    return {"cv_pct": float(100 * values.std(ddof=1) / values.mean()), "max_rel_dev_pct": float(100 * rel.max())}


def _interleave(holdout: list[Any], train: list[Any]) -> list[tuple[str, Any]]:
    """Held-out and training networks in one order: a held-out one first (the noise
    probe), the rest of both spread evenly through it."""
    tagged = [("holdout", a, i / max(len(holdout), 1)) for i, a in enumerate(holdout)]
    tagged += [("train", a, (i + 0.5) / max(len(train), 1)) for i, a in enumerate(train)]
    return [(role, arch) for role, arch, _ in sorted(tagged, key=lambda t: t[2])]


def _pop_first(todo: list[tuple[str, Any]], roles: set[str]) -> tuple[str, Any]:
    i = next(i for i, (role, _) in enumerate(todo) if role in roles)
    return todo.pop(i)


def unique_archs(space: SearchSpace, rng: random.Random, n: int, exclude: list[Any] | None = None) -> list[Any]:
    """Up to ``n`` distinct archs sampled with ``rng``, none of ``exclude``."""
    seen = {space.arch_key(a) for a in exclude or []}
    out: list[Any] = []
    for _ in range(n * 50):
        if len(out) >= n:
            break
        arch = space.sample(rng)
        key = space.arch_key(arch)
        if key not in seen:
            seen.add(key)
            out.append(arch)
    return out


def _per_metric(networks: list[tuple[str, Any]], metrics: tuple[LatencyMetric, ...],
                default: LatencyMetric) -> list[tuple[str, Any]]:
    """Each network once per metric (its role named for the metric), the default metric's
    first (the first held-out one is the noise probe)."""
    ordered = [default] + [m for m in metrics if m != default]
    return [(m.role(role), arch) for role, arch in networks for m in ordered]


def _owner(metrics: tuple[LatencyMetric, ...], block: BlockSpec) -> int:
    return next((k for k, m in enumerate(metrics) if m.owns(block)), 0)


def _block_pool(space: SearchSpace, rng: random.Random, n_archs: int,
                metrics: tuple[LatencyMetric, ...] | None = None) -> tuple[list[BlockSpec], list[float]]:
    """Distinct blocks of ``n_archs`` sampled networks (plus the extremes), every metric's
    (phase's) blocks, with how often each occurs per network of its metric on average."""
    counts: Counter[str] = Counter()
    specs: dict[str, BlockSpec] = {}
    archs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(n_archs)]
    metrics = metrics or latency_metrics(space)
    for arch in archs:
        for b in (b for m in metrics for b in m.blocks(space, arch)):
            counts[b.key()] += 1
            specs[b.key()] = b
    keys = sorted(specs)
    return [specs[k] for k in keys], [counts[k] / len(archs) for k in keys]


def describe_target(target: dict[str, Any]) -> str:
    return json.dumps(target, sort_keys=True)
