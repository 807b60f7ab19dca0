"""Progressive-shrinking phases resolved against a space: which choices each phase samples.

A space shrinks by the :class:`~nas.training.config.PhasePlan` of its family: OFA's
kernel -> depth -> expand for convolutional spaces (mbv3), depth -> heads -> width for
transformers (gpt). The plan is the one whose choice lists the space's config has.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nas.errors import EdgenasError
from nas.training.config import CNN_PLAN, PLANS, PhaseConfig, PhasePlan, TrainSection
from nas.training.sandwich import sandwich_archs

#: Dimensions held at their maximum in each phase of mbv3 (OFA's order: kernel, depth, expand).
FIXED_AT_MAX: dict[str, tuple[str, ...]] = CNN_PLAN.fixed_at_max


@dataclass(frozen=True)
class Phase:
    """A phase ready to run: global step range, learning rate, sampling choices."""

    index: int
    name: str
    start: int
    steps: int
    lr: float
    choices: dict[str, tuple[int, ...]]
    sort_channels: bool

    def archs(self, space: Any, rng: random.Random, num_random: int) -> list[Any]:
        """The sub-networks of one step: the largest alone, or the sandwich of the phase."""
        if self.name == "largest":
            return [space.largest(**self.choices)]
        return sandwich_archs(space, rng, num_random, self.choices)


def plan_for(space: Any) -> PhasePlan:
    """The phase plan of ``space``: the first whose choice lists its config has."""
    config = getattr(space, "config", None)
    for plan in PLANS:
        if config is not None and all(hasattr(config, k) for k in plan.choice_keys):
            return plan
    wanted = " or ".join("/".join(p.choice_keys) for p in PLANS)
    raise EdgenasError(f"space {space.name!r} has no elastic {wanted} to train a supernet over")


def resolve_phases(train: TrainSection, space: Any) -> list[Phase]:
    """Turn the config's phases into :class:`Phase` objects, checking them against the space."""
    plan = plan_for(space)
    configured = train.resolved_phases(plan)
    for i, cfg in enumerate(configured):
        if cfg.name not in plan.order:
            raise EdgenasError(
                f"train.phases[{i}].name: {cfg.name} is not a phase of space {space.name}; "
                f"use {', '.join(plan.order)}"
            )
    order = [plan.order.index(p.name) for p in configured]
    if order != sorted(order):
        raise EdgenasError(f"train: phases must follow the order {' -> '.join(plan.order)}")
    phases, start = [], 0
    for i, cfg in enumerate(configured):
        choices = _choices(cfg, plan, space, f"train.phases[{i}]" if train.phases else "train")
        phases.append(
            Phase(
                index=i,
                name=cfg.name,
                start=start,
                steps=cfg.steps,
                lr=cfg.lr if cfg.lr is not None else train.lr,
                choices=choices,
                sort_channels=train.progressive and cfg.name in plan.sorting,
            )
        )
        start += cfg.steps
    return phases


def _choices(cfg: PhaseConfig, plan: PhasePlan, space: Any, where: str) -> dict[str, tuple[int, ...]]:
    config = space.config
    choices = {k: (max(getattr(config, k)),) for k in plan.fixed_at_max[cfg.name]}
    others = {k for plans in PLANS for k in plans.choice_keys} - set(plan.choice_keys)
    for key in sorted(others):
        if getattr(cfg, key) is not None:
            raise EdgenasError(
                f"{where}.{key}: space {space.name} has no {key}; a phase narrows {', '.join(plan.choice_keys)}"
            )
    for key in plan.choice_keys:
        value = getattr(cfg, key)
        if value is None:
            continue
        try:
            space.largest(**{key: tuple(value)})
        except ValueError as exc:
            raise EdgenasError(f"{where}.{key}: {exc}") from None
        choices[key] = tuple(sorted(value))
    return choices


def locate(phases: list[Phase], step: int) -> tuple[Phase, int]:
    """The phase that global ``step`` belongs to, and the step within it."""
    for phase in phases:
        if step < phase.start + phase.steps:
            return phase, step - phase.start
    last = phases[-1]
    return last, step - last.start
