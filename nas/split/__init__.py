"""Edge-cloud collaborative inference: split a network between a device and the cloud,
run the split for real, and offload only when the edge is unsure.

* :func:`plan_split` prices every cut of an arch (edge compute + link + cloud compute)
  from the two devices' block-level predictors; :class:`Link` and :func:`parse_link`
  describe the network between them.
* :func:`run_split` runs the edge part here and the cloud part in a second process over
  TCP on 127.0.0.1 through a software-enforced link, and times end-to-end requests.
* :func:`evaluate_cascade` measures a cascade (the edge answers when confident, else
  offloads to the cloud's largest network) as its threshold varies.
* :func:`speculative_generate` decodes with a draft sub-network and the verifier (the
  ``gpt`` space's largest network) in one process, writing the verifier's greedy output;
  :func:`plan_draft_length` picks how many tokens to draft per round from
  :class:`SpeculativeCosts` and the acceptance rate; :func:`run_decoding` runs it for
  real, the verifier in a second process over the link (:class:`VerifierLink`).
"""

from nas.split.draft_plan import (
    DraftPlan,
    SpeculativeCosts,
    expected_tokens,
    plan_draft_length,
    speculative_costs,
)
from nas.split.link import FRAME_BYTES, PRECISIONS, Link, parse_link, transfer_bytes
from nas.split.pair import DevicePair, load_pair, resolve_arch
from nas.split.plan import SplitPlan, SplitPoint, best_split, format_plan, plan_split
from nas.split.run import RunResult, RunSettings, run_split, run_split_links
from nas.split.speculative import (
    Drafter,
    Speculated,
    Verifier,
    check_draft,
    estimate_acceptance,
    speculative_generate,
)
from nas.split.speculative_run import DecodeRun, VerifierLink, run_decoding

__all__ = [
    "FRAME_BYTES",
    "PRECISIONS",
    "DecodeRun",
    "DevicePair",
    "DraftPlan",
    "Drafter",
    "Link",
    "RunResult",
    "RunSettings",
    "SpeculativeCosts",
    "Speculated",
    "SplitPlan",
    "SplitPoint",
    "Verifier",
    "VerifierLink",
    "best_split",
    "check_draft",
    "estimate_acceptance",
    "expected_tokens",
    "format_plan",
    "load_pair",
    "parse_link",
    "plan_draft_length",
    "plan_split",
    "resolve_arch",
    "run_decoding",
    "run_split",
    "run_split_links",
    "speculative_costs",
    "speculative_generate",
    "transfer_bytes",
]
