"""A stand-in Optuna trial that turns parameter values into an arch outside a study.

Samplers and the batched engine resolve parameter sets to archs with it
(``space.suggest(ParamRecorder(params))``) and write such archs back as real trials.
"""

from __future__ import annotations

import random
from typing import Any

_MISSING = object()


class ParamRecorder:
    """A stand-in Optuna trial: returns fixed choices and records every parameter's choices.

    ``params`` after ``space.suggest(recorder)`` holds a value for every parameter the space
    asked for (the given ones, else a random or the first choice); :meth:`distributions`
    gives the Optuna distributions a real trial would have stored for them, so an arch
    scored outside Optuna can be written to a study as a trial (:mod:`nas.search.bulk`).
    """

    def __init__(self, params: dict[str, Any] | None = None, rng: random.Random | None = None) -> None:
        self.params = dict(params or {})
        self.choices: dict[str, list[Any]] = {}
        self.rng = rng
        self._ints: dict[str, tuple[int, int, int, bool]] = {}

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.choices[name] = choices = list(choices)
        value = self.params.get(name, _MISSING)
        if value is _MISSING:
            value = self.params[name] = self.rng.choice(choices) if self.rng else choices[0]
        return value

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        self._ints[name] = (low, high, step, log)
        return self.suggest_categorical(name, list(range(low, high + 1, step)))

    def distributions(self) -> dict[str, Any]:
        """Parameter name -> the Optuna distribution its ``suggest_*`` call stands for.

        Distributions are shared between calls (one object per parameter and choices, as
        a trial's are never changed): a batched search writes thousands of trials with the
        same few dozen, and building them again costs more than scoring a cached arch."""
        out: dict[str, Any] = {}
        for name, choices in self.choices.items():
            # keyed with each choice's type: 1, 1.0 and True are equal but distinct choices
            spec = (("int", self._ints[name]) if name in self._ints
                    else ("cat", tuple((type(c).__name__, c) for c in choices)))
            dist = _DISTRIBUTIONS.get(spec)
            if dist is None:
                dist = _DISTRIBUTIONS[spec] = _distribution(spec)
            out[name] = dist
        return out


def arch_of_params(space: Any, params: dict[str, Any]) -> Any:
    """The arch a parameter set stands for: the space's fast path when it has one
    (``arch_from_params``: samplers resolve thousands of sets per search), else its
    ``suggest`` on a stand-in trial (which also fills in parameters the set lacks)."""
    fast = getattr(space, "arch_from_params", None)
    if fast is not None:
        try:
            return fast(params)
        except KeyError:  # a partial parameter set
            pass
    return space.suggest(ParamRecorder(params))


_DISTRIBUTIONS: dict[tuple, Any] = {}


def _distribution(spec: tuple) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    kind, what = spec
    if kind == "int":
        low, high, step, log = what
        return IntDistribution(low, high, log=log, step=step)
    return CategoricalDistribution([c for _type, c in what])
