"""How many tokens the edge should draft per verification: the draft length from predicted costs.

One round of speculative decoding costs the edge ``k`` draft steps, one request over the
link (``k`` token ids up, three integers back: accepted count, next token, room for the
next round) and one verifier pass over ``k + 1`` tokens in the cloud::

    round_ms(k) = k * draft_ms + link.request_ms(4 k, 12) + verify_ms(k)

and writes on average ``E(k) = (1 - alpha^(k+1)) / (1 - alpha)`` tokens, where ``alpha`` is
the chance that a drafted token is accepted (each independently, an approximation). The
planner picks the ``k`` with the most tokens per second ``E(k) / round_ms(k)``, and
predicts the two baselines beside it: edge only (the draft alone, another text) and
cloud only (the edge sends the prompt; the cloud decodes and streams each token back, so
no per-token round trip).

The costs (:class:`SpeculativeCosts`) come from the devices' profiles when they predict
the decode of one token (``decode_ms``) and the prefill of a context (``prefill_ms``),
and otherwise from timing the two models briefly on this machine
(:func:`time_costs`); every figure carries where it came from.

Example::

    costs = speculative_costs(draft, verifier, parse_link("20mbit,50ms"), prompt_tokens=32)
    plan = plan_draft_length(costs, alpha=0.8)
    plan.draft_length, plan.predicted["speculative"]["tokens_per_s"]
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import EdgenasError
from nas.split.link import Link

REPLY_BYTES = 12
"""Payload of a verification's answer: accepted count, next token, room (int32 each)."""

TOKEN_BYTES = 4
"""A token id on the link (int32)."""


@dataclass(frozen=True)
class SpeculativeCosts:
    """What one round costs: the edge's draft step, the cloud's verifier pass for each
    draft length ``k`` (``verify_ms[k]``: the pending token and ``k`` drafts in one pass;
    ``verify_ms[0]`` is plain one-token decoding), both prefills, and the link."""

    draft_ms: float
    verify_ms: tuple[float, ...]
    link: Link
    draft_prefill_ms: float = 0.0
    cloud_prefill_ms: float = 0.0
    prompt_tokens: int = 1
    edge_source: str = ""
    cloud_source: str = ""

    def __post_init__(self) -> None:
        if not self.verify_ms or self.draft_ms <= 0 or min(self.verify_ms) <= 0:
            raise EdgenasError("speculative costs need a positive draft time and verifier times for k = 0, 1, ...")

    def verify(self, k: int) -> float:
        """The verifier's pass over ``k`` drafts (extrapolated linearly past the last timed ``k``)."""
        if k < len(self.verify_ms):
            return self.verify_ms[k]
        last = len(self.verify_ms) - 1
        slope = (self.verify_ms[last] - self.verify_ms[0]) / last if last else 0.0
        return self.verify_ms[last] + slope * (k - last)

    def round_ms(self, k: int) -> float:
        """One round: ``k`` draft steps, one request over the link, one verifier pass."""
        return k * self.draft_ms + self.link.request_ms(TOKEN_BYTES * k, REPLY_BYTES) + self.verify(k)

    def with_link(self, link: Link) -> SpeculativeCosts:
        return SpeculativeCosts(self.draft_ms, self.verify_ms, link, self.draft_prefill_ms, self.cloud_prefill_ms,
                                self.prompt_tokens, self.edge_source, self.cloud_source)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verify_ms": list(self.verify_ms), "link": self.link.to_json()}


def expected_tokens(alpha: float, k: int) -> float:
    """Tokens one round writes on average: ``(1 - alpha^(k+1)) / (1 - alpha)`` (``k + 1`` at alpha 1)."""
    if not 0.0 <= alpha <= 1.0:
        raise EdgenasError(f"the acceptance rate must be between 0 and 1, got {alpha}")
    return float(k + 1) if alpha >= 1.0 else (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


@dataclass
class DraftPlan:
    """The chosen draft length, every ``k`` the planner priced, and the predicted figures
    of edge only, cloud only and speculative decoding (tokens/s after the first token,
    time to first token)."""

    draft_length: int
    alpha: float
    chosen_by: str
    costs: SpeculativeCosts
    table: list[dict[str, float]] = field(default_factory=list)
    predicted: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"draft_length": self.draft_length, "alpha": self.alpha, "chosen_by": self.chosen_by,
                "costs": self.costs.to_json(), "table": self.table, "predicted": self.predicted}


def plan_draft_length(costs: SpeculativeCosts, alpha: float, *, max_length: int = 16,
                      draft_length: int | None = None) -> DraftPlan:
    """The draft length with the most predicted tokens per second (``k`` from 1 to
    ``max_length``), or ``draft_length`` when given; and the predicted figures."""
    if max_length < 1:
        raise EdgenasError(f"the longest draft must be at least 1 token, got {max_length}")
    if draft_length is not None and draft_length < 1:
        raise EdgenasError(f"--draft-length must be auto or at least 1, got {draft_length}")
    table = []
    for k in range(1, max(max_length, draft_length or 0) + 1):
        tokens, ms = expected_tokens(alpha, k), costs.round_ms(k)
        table.append({"k": k, "tokens_per_round": tokens, "round_ms": ms, "tokens_per_s": 1e3 * tokens / ms})
    best = max(table[:max_length], key=lambda row: row["tokens_per_s"])
    k = draft_length if draft_length is not None else int(best["k"])
    link = costs.link
    first_ms = link.request_ms(TOKEN_BYTES * costs.prompt_tokens, REPLY_BYTES) + costs.cloud_prefill_ms
    stream_ms = max(costs.verify(0), link.wire_ms(REPLY_BYTES))  # the cloud decodes; the link carries each token
    predicted = {
        "edge_only": {"tokens_per_s": 1e3 / costs.draft_ms, "ttft_ms": costs.draft_prefill_ms},
        "cloud_only": {"tokens_per_s": 1e3 / stream_ms, "ttft_ms": first_ms},
        "speculative": {"tokens_per_s": table[k - 1]["tokens_per_s"], "ttft_ms": first_ms,
                        "tokens_per_round": table[k - 1]["tokens_per_round"]},
    }
    return DraftPlan(k, alpha, "given" if draft_length is not None else "planner", costs, table, predicted)


# --- where the costs come from ----------------------------------------------------------
def profile_decode_ms(cost_model: Any, arch: Any) -> tuple[float, float] | None:
    """``(decode_ms, prefill_ms)`` of ``arch`` from a device's cost model when its
    predictions include ``decode_ms`` (one token after a cache of ``context - 1``) and
    ``prefill_ms`` (or ``latency_ms``, the prefill of ``context`` tokens); else ``None``."""
    if cost_model is None:
        return None
    try:
        out = cost_model.predict([arch])
    except (ValueError, KeyError, TypeError):
        return None
    if "decode_ms" not in out:
        return None
    prefill = out.get("prefill_ms", out.get("latency_ms"))
    decode = float(out["decode_ms"][0])
    return decode, float(prefill[0]) if prefill is not None else decode


def _tokens_ms(decode: float, prefill: float, context: int, tokens: int) -> float:
    """A pass over ``tokens`` new tokens, between one (decode) and ``context`` (prefill), linearly."""
    return decode + (tokens - 1) * max(prefill - decode, 0.0) / max(context - 1, 1)


@torch.no_grad()
def _median_ms(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def time_costs(model: nn.Module, *, prompt_tokens: int, max_length: int = 16,
               repeats: int = 15) -> tuple[float, tuple[float, ...], float]:
    """Time ``model`` on this machine (torch eager, this process's threads; median of
    ``repeats`` after a warm-up): one decode step and passes over ``1 .. max_length + 1``
    tokens after a cache of half the context, and a prefill of ``prompt_tokens``.
    Returns ``(decode_ms, passes_ms, prefill_ms)`` where ``passes_ms[k]`` covers ``k + 1``
    tokens: a straight line fitted through the medians (``decode_ms`` is its value at one token)."""
    model.eval()
    context = int(model.arch.context)
    gen = torch.Generator().manual_seed(0)
    past = torch.randint(0, model.config.vocab_size, (1, context // 2), generator=gen)
    cache = model.new_cache()
    model(past, cache)
    kept = cache.length
    passes = []
    for k in range(max_length + 1):
        n = min(k + 1, context - kept)
        new = torch.randint(0, model.config.vocab_size, (1, n), generator=gen)

        def step(new: torch.Tensor = new) -> None:
            model(new, cache)
            cache.truncate(kept)

        passes.append(_median_ms(step, repeats))
    prompt = torch.randint(0, model.config.vocab_size, (1, max(1, min(prompt_tokens, context))), generator=gen)
    prefill = _median_ms(lambda: model(prompt, model.new_cache()), max(3, repeats // 3))
    # a line through the medians: on a shared machine single medians jump by a scheduler
    # slice, and the planner would chase that noise
    slope, intercept = np.polyfit(np.arange(len(passes)), np.asarray(passes), 1)
    fitted = tuple(float(max(intercept + slope * k, min(passes))) for k in range(len(passes)))
    return fitted[0], fitted, prefill


def speculative_costs(draft: nn.Module, verifier: nn.Module, link: Link, *, prompt_tokens: int,
                      edge: Any = None, cloud: Any = None, max_length: int = 16, repeats: int = 15) -> SpeculativeCosts:
    """The costs of one round for ``draft`` on the edge and ``verifier`` in the cloud.

    ``edge`` and ``cloud`` are the devices' cost models (``Workspace.cost_model``) or
    ``None``: a side whose profile predicts ``decode_ms`` takes its figures from there
    (a pass over ``k + 1`` tokens interpolated between the decode of one token and the
    prefill of a context); the other side is timed on this machine (:func:`time_costs`).
    """
    sides = []
    for role, model, cost_model in (("edge", draft, edge), ("cloud", verifier, cloud)):
        found = profile_decode_ms(cost_model, model.arch)
        if found is not None:
            decode, prefill = found
            context = int(model.arch.context)
            passes = tuple(_tokens_ms(decode, prefill, context, k + 1) for k in range(max_length + 1))
            sides.append((decode, passes, _tokens_ms(decode, prefill, context, min(prompt_tokens, context)),
                          f"profile of {getattr(cost_model.profile, 'name', role)}: predicted decode {decode:.3f} ms "
                          f"and prefill {prefill:.3f} ms, passes of k tokens interpolated"))
        else:
            decode, passes, prefill = time_costs(model, prompt_tokens=prompt_tokens, max_length=max_length,
                                                 repeats=repeats)
            why = "no decode metric in its profile" if cost_model is not None else "no device profile given"
            sides.append((decode, passes, prefill,
                          f"timed on this machine ({why}): torch eager, {torch.get_num_threads()} thread(s), "
                          f"median of {repeats}"))
    (draft_ms, _, draft_prefill, edge_source), (_, verify, cloud_prefill, cloud_source) = sides
    return SpeculativeCosts(draft_ms, verify, link, draft_prefill, cloud_prefill, prompt_tokens, edge_source,
                            cloud_source)


__all__ = ["REPLY_BYTES", "TOKEN_BYTES", "DraftPlan", "SpeculativeCosts", "expected_tokens", "plan_draft_length",
           "profile_decode_ms", "speculative_costs", "time_costs"]
