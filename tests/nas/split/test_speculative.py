"""Speculative decoding in one process: the output is the verifier's greedy output, and the planner."""

from __future__ import annotations

import math

import pytest
import torch

from nas.errors import EdgenasError
from nas.generate import generate
from nas.split.draft_plan import (
    SpeculativeCosts,
    expected_tokens,
    plan_draft_length,
    speculative_costs,
)
from nas.split.link import Link
from nas.split.speculative import (
    Drafter,
    Verifier,
    check_draft,
    estimate_acceptance,
    speculative_generate,
)
from search_spaces import get_space
from search_spaces.gpt import GPTArch


def _noisy_supernet(space, seed: int, scale: float = 0.3):
    """A random supernet whose logits depend on more than the last token (random init
    mostly repeats it), so drafts and verifier disagree in interesting ways."""
    torch.manual_seed(seed)
    supernet = space.build_supernet().eval()
    with torch.no_grad():
        for p in supernet.parameters():
            p.add_(torch.randn_like(p) * scale)
    return supernet


@pytest.fixture(scope="module")
def models():
    space = get_space("gpt", preset="tiny", contexts=(16, 32))
    supernet = _noisy_supernet(space, 0)
    verifier = supernet.extract(space.largest()).eval()
    draft = supernet.extract(space.smallest()).eval()  # shares the verifier's weights
    stranger = _noisy_supernet(space, 1).extract(space.smallest()).eval()  # shares nothing: disagrees often
    return space, verifier, draft, stranger


def _check_equal(models, prompt_len: int, lengths: tuple[int, ...], tokens: int) -> None:
    space, verifier, draft, stranger = models
    prompt = torch.randint(0, 256, (prompt_len,), generator=torch.Generator().manual_seed(prompt_len))
    reference = generate(verifier, prompt, tokens).tolist()
    for drafter in (draft, stranger):
        for k in lengths:
            out = speculative_generate(drafter, verifier, prompt, tokens, draft_length=k)
            assert out.tokens == reference, (drafter.arch, k)
    assert speculative_generate(verifier, verifier, prompt, tokens, 4).acceptance == 1.0
    assert speculative_generate(stranger, verifier, prompt, tokens, 4).acceptance < 0.5


@pytest.mark.parametrize("prompt_len", [1, 45])
def test_output_is_the_verifiers_greedy_output_token_for_token(models, prompt_len):
    """Prompts shorter and longer than the context, drafts that agree and that disagree
    (a draft sharing no weights); 40 tokens cross the verifier's window slide (context 32)."""
    _check_equal(models, prompt_len, (0, 3, 40), 40)


@pytest.mark.slow
@pytest.mark.parametrize("prompt_len", [1, 7, 31, 32, 45])
def test_output_is_the_verifiers_greedy_output_many_lengths(models, prompt_len):
    _check_equal(models, prompt_len, (0, 1, 2, 3, 5, 8, 16, 40), 90)


def test_counts_add_up(models):
    _, verifier, draft, _ = models
    out = speculative_generate(draft, verifier, [65, 66, 67], 50, draft_length=5)
    assert len(out.tokens) == 50 and out.rounds == len(out.per_round) > 0
    assert out.accepted == sum(out.per_round) and out.accepted + out.rounds + 1 >= 50
    assert speculative_generate(draft, verifier, [65], 0, 3).tokens == []


def test_kv_cache_truncate_rolls_back_exactly(models):
    _, verifier, _, _ = models
    ids = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(3))
    cache = verifier.new_cache()
    verifier(ids[:, :8], cache)
    verifier(ids[:, 8:], cache)
    cache.truncate(8)
    assert cache.length == 8
    with torch.no_grad():
        again = verifier(ids[:, 8:], cache)[0, -1]
        whole = verifier(ids)[0, -1]
    assert torch.allclose(again, whole, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError):
        cache.truncate(-1)


def test_verifier_room_stops_at_the_window_slide(models):
    _, verifier, draft, _ = models
    v = Verifier(verifier)
    v.prefill(list(range(30)))  # 30 of 32 positions used: room for 1 draft, then a slide
    assert v.room() == 1
    a, _ = v.verify([1, 2, 3])  # checks one draft: the window holds 32 positions
    assert a <= 1 and len(v.tokens) == 32 + a
    if a == 0:
        assert v.room() == 0  # the next byte still fits the window, with no draft
        v.verify([])
    assert v.room() == 16 and v.start == 0  # the next pass slides to half the context (lazily)
    v.verify([])
    assert v.start == 33 - 16 and v.cache.length == 16  # the window but its pending last byte
    d = Drafter(draft)
    d.prefill(list(range(40)))  # longer than its context: keeps the last 32
    assert len(d.draft(3)) == 3


def test_a_draft_outside_the_space_or_larger_than_the_verifier_is_refused():
    space = get_space("gpt", preset="tiny")
    small, large = space.smallest(), space.largest()
    check_draft(space, small, large)
    with pytest.raises(EdgenasError, match="not a sub-network"):
        check_draft(space, GPTArch(200, (2, 2), (2, 2), 64), large)
    with pytest.raises(EdgenasError, match="larger than the verifier"):
        check_draft(space, large, small)
    with pytest.raises(EdgenasError, match="language model"):
        check_draft(get_space("mbv3", preset="small"), small, large)


def test_expected_tokens_per_round():
    assert expected_tokens(0.0, 5) == 1.0
    assert expected_tokens(1.0, 5) == 6.0
    assert math.isclose(expected_tokens(0.5, 2), 1 + 0.5 + 0.25)
    with pytest.raises(EdgenasError):
        expected_tokens(1.5, 2)


def _costs(rtt: float, draft: float = 1.0) -> SpeculativeCosts:
    # a verifier pass costs 10 ms plus 0.5 ms per extra token
    return SpeculativeCosts(draft, tuple(10.0 + 0.5 * k for k in range(17)), Link(1e9, rtt), 2.0, 12.0, 32)


def test_planner_drafts_more_when_round_trips_cost_more_and_drafts_are_accepted():
    short, long_ = plan_draft_length(_costs(5.0), 0.8), plan_draft_length(_costs(100.0), 0.8)
    assert long_.draft_length > short.draft_length >= 1
    assert plan_draft_length(_costs(50.0), 0.2).draft_length < long_.draft_length
    best = max(long_.table, key=lambda row: row["tokens_per_s"])
    assert best["k"] == long_.draft_length
    k = long_.draft_length
    assert math.isclose(long_.predicted["speculative"]["tokens_per_s"],
                        1e3 * expected_tokens(0.8, k) / (k * 1.0 + _costs(100.0).link.request_ms(4 * k, 12) + 10 + 0.5 * k))
    assert math.isclose(long_.predicted["cloud_only"]["tokens_per_s"], 100.0)  # the cloud's 10 ms decode, streamed
    assert plan_draft_length(_costs(5.0), 0.8, draft_length=7).draft_length == 7
    with pytest.raises(EdgenasError):
        plan_draft_length(_costs(5.0), 0.8, draft_length=0)


def test_costs_are_timed_here_without_a_decode_metric(models):
    _, verifier, draft, _ = models
    costs = speculative_costs(draft, verifier, Link(1e7, 20.0), prompt_tokens=8, max_length=3, repeats=3)
    assert len(costs.verify_ms) == 4 and costs.draft_ms > 0 and costs.cloud_prefill_ms > 0
    assert "timed on this machine" in costs.edge_source and "no device profile" in costs.cloud_source

    class Profiled:  # a cost model whose predictions include decoding
        profile = type("P", (), {"name": "server"})()

        def predict(self, archs):
            return {"latency_ms": [40.0], "decode_ms": [2.0]}

    costs = speculative_costs(draft, verifier, Link(1e7, 20.0), prompt_tokens=8, cloud=Profiled(), max_length=3,
                              repeats=3)
    assert costs.cloud_source.startswith("profile of server") and costs.verify_ms[0] == 2.0
    assert costs.verify_ms[0] < costs.verify_ms[3] < 40.0


def test_acceptance_estimate_tracks_agreement(models):
    _, verifier, draft, stranger = models
    prompts = [[10, 20, 30, 40], [100, 101, 102]]
    same = estimate_acceptance(verifier, verifier, prompts, tokens=12)
    assert same["alpha"] == 1.0 and same["positions"] == 24
    assert estimate_acceptance(stranger, verifier, prompts, tokens=12)["alpha"] < 0.5
