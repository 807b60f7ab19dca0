"""Progressive-shrinking phases resolved against a space: which choices each phase samples."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nas.errors import EdgenasError
from nas.training.config import CHOICE_KEYS, PhaseConfig, TrainSection
from nas.training.sandwich import sandwich_archs

#: Dimensions held at their maximum in each phase (OFA's order: kernel, depth, expand).
FIXED_AT_MAX: dict[str, tuple[str, ...]] = {
    "largest": ("depths", "kernels", "expands", "resolutions"),
    "kernel": ("depths", "expands"),
    "depth": ("expands",),
    "expand": (),
}


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


def resolve_phases(train: TrainSection, space: Any) -> list[Phase]:
    """Turn the config's phases into :class:`Phase` objects, checking choices against the space."""
    phases, start = [], 0
    for i, cfg in enumerate(train.resolved_phases()):
        choices = _choices(cfg, space, f"train.phases[{i}]" if train.phases else "train")
        phases.append(
            Phase(
                index=i,
                name=cfg.name,
                start=start,
                steps=cfg.steps,
                lr=cfg.lr if cfg.lr is not None else train.lr,
                choices=choices,
                sort_channels=train.progressive and cfg.name == "expand",
            )
        )
        start += cfg.steps
    return phases


def _choices(cfg: PhaseConfig, space: Any, where: str) -> dict[str, tuple[int, ...]]:
    config = getattr(space, "config", None)
    if config is None or not all(hasattr(config, k) for k in CHOICE_KEYS):
        raise EdgenasError(f"space {space.name!r} has no elastic {'/'.join(CHOICE_KEYS)} to train a supernet over")
    choices = {k: (max(getattr(config, k)),) for k in FIXED_AT_MAX[cfg.name]}
    for key in CHOICE_KEYS:
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
