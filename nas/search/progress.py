"""Progress of a search: trials done, feasible so far, best per objective, rate and ETA.

Fed one finished trial at a time (``update``) by either engine; prints a line to stderr
at most every ``every_s`` seconds and at the end.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Progress:
    total: int
    names: list[str]
    directions: list[str]
    done: int = 0
    feasible: int = 0
    every_s: float = 2.0
    quiet: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    best: list[float] = field(default_factory=list)
    _start: float = field(default_factory=time.monotonic)
    _start_done: int = 0
    _last: float = 0.0

    def __post_init__(self) -> None:
        self.best = [math.nan] * len(self.names)

    @classmethod
    def from_study(cls, study: Any, total: int, names: list[str], directions: list[str]) -> Progress:
        """Start from what a (resumed) study already holds."""
        from optuna.trial import TrialState

        progress = cls(total, names, directions)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            progress.add(trial.values, list(trial.constraints.values()), quiet=True)
        progress._start_done = progress.done
        return progress

    def add(self, values: Any, constraints: Any, quiet: bool = False) -> None:
        """Count one complete trial; ``constraints`` are its values (<= 0 feasible)."""
        self.done += 1
        if all(c <= 0 for c in (constraints or [])):
            self.feasible += 1
            for i, (v, d) in enumerate(zip(values, self.directions)):
                b = self.best[i]
                if math.isnan(b) or (v > b if d == "maximize" else v < b):
                    self.best[i] = v
        if not quiet and time.monotonic() - self._last >= self.every_s:
            self.print()

    def line(self) -> str:
        elapsed = time.monotonic() - self._start
        new = self.done - self._start_done
        rate = new / elapsed if elapsed > 0 else 0.0
        left = max(0, self.total - self.done)
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        best = ", ".join(f"{n} {b:.4g}" for n, b in zip(self.names, self.best) if not math.isnan(b))
        return (f"trials {self.done}/{self.total} | feasible {self.feasible} | best feasible: "
                f"{best or '-'} | {rate:.1f} trials/s | ETA {eta}")

    def print(self) -> None:
        self._last = time.monotonic()
        if not self.quiet:
            print(self.line(), file=self.stream, flush=True)
