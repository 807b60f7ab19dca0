"""Validation networks timed outside the machine's fast state, timed again.

The benchmarks' validation networks are the truth a profile is judged against, so they
are measured as the profile measures its own networks: with the profile's state gate
(:mod:`latency_predictors.machine_state`), and those it could not time in the fast state
(the machine stayed slow longer than the wait) are timed again in later passes, as
:class:`~latency_predictors.profile_builder.ProfileBuilder` does with its networks. Which
ones are retaken depends only on their own reference readings, never on the prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def retake_not_in_state(rows: list[Any], fast_ms: float | None, remeasure: Callable[[Any], Any], store: Any,
                        passes: int) -> dict[str, int]:
    """Time again, up to ``passes`` times, every measurement of ``rows`` with too few
    fast-state repeats; a retake that has enough replaces it in ``rows`` and in ``store``.
    Returns the counts: retakes tried, replaced, passes run, still not in the fast state."""
    from latency_predictors.machine_state import in_state

    def slow(m: Any) -> bool:
        return bool(m.reference_ms) and in_state(m.reference_ms, fast_ms) is None

    counts = {"tried": 0, "replaced": 0, "passes": 0}
    for _ in range(passes if fast_ms is not None else 0):
        todo = [i for i, m in enumerate(rows) if slow(m)]
        if not todo:
            break
        counts["passes"] += 1
        for i in todo:
            again = remeasure(rows[i])
            counts["tried"] += 1
            if not slow(again):
                store.add(again, replace_existing=True)
                rows[i] = again
                counts["replaced"] += 1
    counts["still_not_in_state"] = sum(slow(m) for m in rows) if fast_ms is not None else 0
    return counts
