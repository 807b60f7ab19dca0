"""The ``edgenas profile`` workflow: measure, fit, validate, store a device profile.

Phases, each persisted measurement by measurement (an interrupted run resumes where it
stopped, because every item is looked up in the store before it is timed):

1. **noise floor**: one mid-sized network compiled once and timed ``noise_repeats``
   times; the spread of those medians is the floor any predictor is read against.
2. **holdout**: ``holdout`` random whole networks (a fixed seed), never used for fitting.
3. **blocks, adaptively**: the blocks that occur in ``pool_archs`` sampled networks
   form the pool; a seed set (the smallest and largest networks' blocks plus a few
   random ones) is timed, then rounds of blocks picked where a committee of regressors
   disagrees most, weighted by frequency and cost (:mod:`latency_predictors.sampling`),
   until the estimated error left falls below ``stop_error`` or the pool is done.
4. **training networks**: ``train`` random whole networks for the block-sum correction
   and the whole-network model.
5. **fit and validate** both predictors on the holdout; the profile records both.

``budget_minutes`` bounds the whole run: the block phase stops early enough to leave
time for the training networks, and whatever is measured when time runs out is used.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from latency_predictors.device_profile import DeviceProfile, fit_cost_model, validate_device_name
from latency_predictors.errors import InputError
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.metrics import validation_figures
from latency_predictors.sampling import expected_errors
from latency_predictors.timing import Profiler, Timing
from latency_predictors.tvm_profiler import tvm_version
from search_spaces import BlockSpec, SearchSpace


@dataclass(frozen=True)
class ProfilePlan:
    """How much to measure (defaults reach the accuracy target on the small mbv3 preset)."""

    budget_minutes: float = 20.0
    noise_repeats: int = 10
    holdout: int = 10
    train: int = 12
    pool_archs: int = 400
    seed_blocks: int = 24
    round_size: int = 8
    max_blocks: int | None = None
    stop_error: float = 0.005
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget_minutes <= 0:
            raise InputError(f"--budget-minutes must be positive, got {self.budget_minutes}")
        if min(self.noise_repeats, self.holdout, self.train, self.pool_archs, self.round_size) < 0:
            raise InputError("profile plan sizes must be non-negative")


class _Clock:
    def __init__(self, minutes: float) -> None:
        self.start = time.monotonic()
        self.limit = minutes * 60

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.limit - self.elapsed()


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
        holdout = _unique_archs(space, random.Random(rng.random()), self.plan.holdout)
        train_pool = _unique_archs(space, random.Random(rng.random()), self.plan.train, exclude=holdout)
        pool, freq = _block_pool(space, random.Random(rng.random()), self.plan.pool_archs)
        total = self.plan.noise_repeats + len(holdout) + len(pool) + len(train_pool)
        with tqdm(total=total, desc=f"profile {self.profile.name}", unit="meas", disable=not self.progress) as bar:
            self._bar = bar
            self.profile.noise_floor = self._noise_floor(space)
            self._networks(space, holdout, "holdout", clock, reserve=0.0)
            per_net = self._seconds_per_network or 10.0
            self._blocks(pool, freq, clock, reserve=per_net * len(train_pool) * 1.1)
            self._networks(space, train_pool, "train", clock, reserve=0.0)
        self.profile.build_seconds = round(self._previous_seconds() + clock.elapsed(), 1)
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
    _seconds_per_network: float | None = None

    def _noise_floor(self, space: SearchSpace) -> dict[str, Any]:
        arch = space.sample(random.Random(self.plan.seed + 12345))
        key = space.arch_key(arch)
        done = self._existing("noise")
        items = [f"{key}#{i}" for i in range(self.plan.noise_repeats)]
        missing = [i for i in items if i not in done]
        self._bar.set_postfix_str("noise floor")
        if missing:
            timer = self.profiler.prepare(space.build_static(arch), space.input_shape(arch))
            for item in missing:
                self._save("noise", item, space.input_shape(arch), timer())
        self._bar.update(len(items))
        medians = np.asarray([m.median_ms for m in self._query("noise") if m.item in items])
        if medians.size < 2:
            return {"n": int(medians.size), "note": "too few repeats to estimate"}
        rel = np.abs(medians - np.median(medians)) / np.median(medians)
        return {
            "n": int(medians.size),
            "median_ms": float(np.median(medians)),
            "cv_pct": float(100 * medians.std(ddof=1) / medians.mean()),
            "max_rel_dev_pct": float(100 * rel.max()),
            "p90_rel_dev_pct": float(100 * np.percentile(rel, 90)),
            "how": "one network compiled once, timed repeatedly; spread of the medians",
        }

    def _networks(self, space: SearchSpace, archs: list[Any], role: str, clock: _Clock, reserve: float) -> None:
        done = self._existing(role)
        self._bar.set_postfix_str(role)
        for arch in archs:
            key = space.arch_key(arch)
            if key not in done:
                # at least two networks per role, else nothing can be fitted or validated
                if clock.left() <= reserve and len(done) >= 2:
                    self.log(f"budget reached during {role} networks; fitting with what is measured")
                    return
                t0 = time.monotonic()
                timing = self.profiler.measure(space.build_static(arch), space.input_shape(arch))
                self._save(role, key, space.input_shape(arch), timing)
                done.add(key)
                spent = time.monotonic() - t0
                prev = self._seconds_per_network
                self._seconds_per_network = spent if prev is None else 0.7 * prev + 0.3 * spent
            self._bar.update(1)

    def _blocks(self, pool: list[BlockSpec], freq: list[float], clock: _Clock, reserve: float) -> None:
        self._bar.set_postfix_str("blocks")
        measured = {m.item: m.median_ms for m in self._query("block")}
        todo = [i for i, b in enumerate(pool) if b.key() not in measured]
        self._bar.update(len(pool) - len(todo))
        queue = self._seed_blocks(pool, todo)
        while todo:
            if not queue:
                queue = self._next_round(pool, freq, measured, todo)
                if not queue:
                    return
            i = queue.pop(0)
            if self.plan.max_blocks is not None and len(measured) >= self.plan.max_blocks:
                self.log(f"block phase stopped at --max-blocks {self.plan.max_blocks} of {len(pool)} blocks")
                return
            # the seed blocks are timed whatever the budget: with fewer, nothing can be fitted
            if clock.left() <= reserve and len(measured) >= min(self.plan.seed_blocks, len(pool)):
                self.log(f"budget: block phase stopped after {len(measured)} of {len(pool)} blocks")
                return
            block = pool[i]
            timing = self.profiler.measure(self.space.build_block(block), block.in_shape)
            self._save("block", block.key(), block.in_shape, timing)
            measured[block.key()] = timing.median_ms
            todo.remove(i)
            self._bar.update(1)

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
        average_net = sum(f * measured[b.key()] for b, f in known) + float(np.dot(cost, [freq[i] for i in todo]))
        if errors.sum() / average_net < self.plan.stop_error:
            self.log(
                f"block predictor converged after {len(known)} of {len(pool)} blocks "
                f"(estimated error left {100 * errors.sum() / average_net:.2f} % of a network)"
            )
            return []
        return [todo[j] for j in np.argsort(-errors)[: self.plan.round_size]]

    def _seed_blocks(self, pool: list[BlockSpec], todo: list[int]) -> list[int]:
        keys = {b.key() for a in (self.space.smallest(), self.space.largest()) for b in self.space.blocks(a)}
        first = [i for i in todo if pool[i].key() in keys]
        rest = [i for i in todo if i not in first]
        random.Random(self.plan.seed).shuffle(rest)
        return first + rest[: max(0, self.plan.seed_blocks - len(first))]

    # --- fitting ------------------------------------------------------------------
    def finish(self, space: SearchSpace) -> DeviceProfile:
        """Fit both predictors, validate them on the holdout, save the profile JSON."""
        profile = self.profile
        holdout = self._query("holdout")
        profile.counts = {role: len(self._query(role)) for role in ("block", "train", "holdout", "noise")}
        profile.validation = {}
        for kind in ("block_sum", "whole_network"):
            profile.predictor = kind
            try:
                model = fit_cost_model(profile, self.store, space=space)
            except ValueError as exc:
                profile.validation[kind] = {"error": str(exc)}
                continue
            if len(holdout) >= 2:
                archs = [space.arch_from_json(m.item) for m in holdout]
                pred = model.predict(archs)["latency_ms"]
                figures = validation_figures([m.median_ms for m in holdout], pred)
                figures["how"] = (
                    f"{len(holdout)} random whole networks never used for fitting, compiled and "
                    f"timed end to end ({profile.backend}, {profile.schedule_label}, median of repeats)"
                )
                profile.validation[kind] = figures
        profile.predictor = "block_sum" if profile.counts["block"] else "whole_network"
        profile.tvm_version = tvm_version()
        profile.save(self.profiles_dir / f"{profile.name}.json")
        return profile

    # --- store helpers ------------------------------------------------------------
    def _query(self, role: str) -> list[Measurement]:
        p = self.profile
        return self.store.query(
            p.name, space=p.space["name"], role=role, backend=p.backend, schedule=p.schedule_label
        )

    def _existing(self, role: str) -> set[str]:
        return {m.item for m in self._query(role)}

    def _save(self, role: str, item: str, shape: tuple[int, ...], timing: Timing) -> None:
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
                input_shape=tuple(shape),
                number=timing.number,
                repeat=timing.repeat,
                median_ms=timing.median_ms,
                spread_ms=timing.spread_ms,
                results_ms=timing.results_ms,
                energy_mj=timing.energy_mj,
                energy_method=timing.energy_method,
            )
        )


def _unique_archs(space: SearchSpace, rng: random.Random, n: int, exclude: list[Any] | None = None) -> list[Any]:
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


def _block_pool(space: SearchSpace, rng: random.Random, n_archs: int) -> tuple[list[BlockSpec], list[float]]:
    """Distinct blocks of ``n_archs`` sampled networks (plus the extremes), with how often
    each occurs per network on average."""
    counts: Counter[str] = Counter()
    specs: dict[str, BlockSpec] = {}
    archs = [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(n_archs)]
    for arch in archs:
        for b in space.blocks(arch):
            counts[b.key()] += 1
            specs[b.key()] = b
    keys = sorted(specs)
    return [specs[k] for k in keys], [counts[k] / len(archs) for k in keys]


def describe_target(target: dict[str, Any]) -> str:
    return json.dumps(target, sort_keys=True)
