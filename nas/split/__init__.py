"""Edge-cloud collaborative inference: split a network between a device and the cloud,
run the split for real, and offload only when the edge is unsure.

* :func:`plan_split` prices every cut of an arch (edge compute + link + cloud compute)
  from the two devices' block-level predictors; :class:`Link` and :func:`parse_link`
  describe the network between them.
* :func:`run_split` runs the edge part here and the cloud part in a second process over
  TCP on 127.0.0.1 through a software-enforced link, and times end-to-end requests.
* :func:`evaluate_cascade` measures a cascade (the edge answers when confident, else
  offloads to the cloud's largest network) as its threshold varies.

The speculative-decoding part of issue 14 (an edge sub-network drafts, the cloud model
verifies) is not here yet: it needs the trained ``gpt`` supernet. Its seam: a drafter and
a verifier are two :class:`~nas.split.parts.CompiledPart`-like callables on the two sides
of the same :class:`~nas.split.wire.LinkedSocket`, and :class:`Link` prices each
verification round trip.
"""

from nas.split.link import FRAME_BYTES, PRECISIONS, Link, parse_link, transfer_bytes
from nas.split.pair import DevicePair, load_pair, resolve_arch
from nas.split.plan import SplitPlan, SplitPoint, best_split, format_plan, plan_split
from nas.split.run import RunResult, RunSettings, run_split, run_split_links

__all__ = [
    "FRAME_BYTES",
    "PRECISIONS",
    "DevicePair",
    "Link",
    "RunResult",
    "RunSettings",
    "SplitPlan",
    "SplitPoint",
    "best_split",
    "format_plan",
    "load_pair",
    "parse_link",
    "plan_split",
    "resolve_arch",
    "run_split",
    "run_split_links",
    "transfer_bytes",
]
