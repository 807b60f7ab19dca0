"""The joint search's cost: each arch's end-to-end latency at its best split.

``edgenas search --device EDGE --cloud CLOUD --link RATE,RTT`` scores every arch by the
fastest of its cuts (:func:`nas.split.plan.plan_split`), so the search returns archs that
are best *when split* (NASC and LENS describe this; Neurosurgeon and DADS split a fixed
network). :class:`SplitObjective` is what :class:`nas.search.problem.SearchProblem` asks;
:func:`annotate_splits` names each result's split point.

Example::

    objective = SplitObjective.load(workspace, space, "pi", "server", "20mbit,40ms")
    e2e_ms, positions = objective.best(archs)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.errors import EdgenasError
from nas.split.link import Link, parse_link
from nas.split.plan import plan_splits

E2E = "e2e_latency_ms"
"""The objective's name in a study (and the metric's name in its trials)."""
POSITION = "split_position"
"""The metric holding the position of each trial's best cut (0 cloud only, last edge only)."""


@dataclass
class SplitObjective:
    """Best-split end-to-end latency of archs for one edge, cloud and link."""

    space: Any
    edge: Any
    cloud: Any
    link: Link
    precision: str = "fp32"

    @classmethod
    def load(cls, workspace: Any, space: Any, edge: str, cloud: str, link: str, precision: str = "fp32") -> SplitObjective:
        """The cost models of ``edge`` and ``cloud`` (profiled on ``space``) and the parsed link."""
        from nas.split.pair import load_pair

        pair = load_pair(workspace, edge, cloud, space)
        for model, role in ((pair.edge, "--device"), (pair.cloud, "--cloud")):
            if model.profile.predictor != "block_sum":
                raise EdgenasError(f"{role} {model.profile.name}: a joint search splits inside the network, which needs "
                                   f"a block-level profile (this one is {model.profile.predictor}); profile it with "
                                   "`edgenas profile`")
        return cls(space, pair.edge, pair.cloud, parse_link(link), precision)

    def best(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """End-to-end latency (ms) at the best split, and that split's position, per arch."""
        plans = plan_splits(self.space, list(archs), self.edge, self.cloud, self.link, precision=self.precision)
        return (np.array([p.best.total_ms for p in plans], dtype=float),
                np.array([p.best.position for p in plans], dtype=float))

    def describe(self) -> dict[str, Any]:
        return {"edge": self.edge.profile.name, "cloud": self.cloud.profile.name, "link": self.link.label(),
                "precision": self.precision, "cloud_created": self.cloud.profile.created}


def annotate_splits(result: dict[str, Any]) -> dict[str, Any]:
    """Name the split point of every trial of a search result (``--out``) that has one:
    ``record["split"] = {"position", "label", "kind"}``."""
    from search_spaces import space_from_description

    space = space_from_description(result["space"])
    records = [result.get("recommended")] + list(result.get("pareto_front", []))
    for record in records:
        if not record or POSITION not in record.get("predicted", {}):
            continue
        arch = space.arch_from_json(record["arch"])
        cuts = space.cuts(arch)
        position = int(record["predicted"][POSITION])
        kind = "cloud only" if position == 0 else "edge only" if position == len(cuts) - 1 else "split"
        record["split"] = {"position": position, "label": cuts[position].label, "kind": kind}
    return result


__all__ = ["E2E", "POSITION", "SplitObjective", "annotate_splits"]
