"""Speculative decoding of the ``gpt`` space: an edge sub-network drafts, the cloud model verifies.

The edge runs a small sub-network of the cloud supernet (the **draft**, a :class:`Drafter`
with its own KV cache) that proposes ``k`` tokens greedily; the cloud runs the largest
network (the **verifier**, a :class:`Verifier` with its KV cache) over those ``k`` tokens
in one forward pass, keeps the longest prefix it agrees with, and adds one token of its
own (the correction at the first disagreement, or a bonus token when all ``k`` agree).
Both caches are rolled back to the tokens kept. Every token written is the verifier's
greedy choice, so the output is the cloud model's greedy output token for token: the
:class:`Verifier` follows :func:`nas.generate.generate` exactly, including where
``generate`` slides its window at the end of the context (a verification never crosses
such a slide: :meth:`Verifier.room` says how many drafts fit before it). The draft's
window slides on its own schedule: it only changes what is proposed, never what is
written.

(One caveat of floating point: the verifier computes ``k + 1`` positions in one matrix
product where ``generate`` computes one at a time; the last bits of a logit can differ
between the two, so two logits tied to within ~1e-6 could be ordered differently. The
tests and the benchmark compare the outputs token for token and report any difference.)

:func:`speculative_generate` runs both in this process (tests, and estimating the
acceptance rate); :mod:`nas.split.speculative_run` runs the verifier in a second process
over the software-enforced link.

Example::

    draft, verifier = supernet.extract(space.smallest()), supernet.extract(space.largest())
    check_draft(space, space.smallest(), space.largest())
    out = speculative_generate(draft, verifier, prompt_ids, 64, draft_length=4)
    out.tokens, out.acceptance        # the verifier's greedy tokens; share of drafts accepted
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.errors import EdgenasError


def _argmax(logits: torch.Tensor) -> list[int]:
    return [int(t) for t in logits.float().argmax(dim=-1).tolist()]


class _Decoder:
    """A model, its context, the tokens written so far and the KV cache of its window."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self.context = int(model.arch.context)
        self.tokens: list[int] = []
        self.start = 0
        self.cache: Any = None


class Verifier(_Decoder):
    """The cloud side: greedy decoding of ``model`` that checks several drafted tokens per pass.

    State: every token written so far (the kept prompt, then the generated ones), the
    window start (``generate`` restarts its cache from the last half of the context when
    the context is full), and a KV cache of the window's tokens except the last one (the
    *pending* token, fed with the next drafts).
    """

    @torch.no_grad()
    def prefill(self, prompt: Sequence[int]) -> int:
        """Read the prompt (its last ``context`` tokens, as ``generate`` keeps) and return the first token."""
        kept = [int(t) for t in prompt][-self.context:]
        if not kept:
            raise ValueError("the prompt needs at least one token")
        self.tokens, self.start = kept, 0
        self.cache = self.model.new_cache()
        token = _argmax(self.model(torch.tensor([kept]), self.cache)[0, -1:])[0]
        self.tokens.append(token)
        return token

    def _window_start(self) -> int:
        n = len(self.tokens)
        return self.start if n - self.start <= self.context else n - (self.context // 2 or 1)

    def room(self) -> int:
        """How many drafted tokens the next :meth:`verify` checks (the rest of the window)."""
        return self._window_start() + self.context - len(self.tokens)

    @torch.no_grad()
    def verify(self, drafts: Sequence[int]) -> tuple[int, int]:
        """Check ``drafts`` (the tokens after the pending one): ``(accepted, next_token)``.

        ``accepted`` leading drafts equal the verifier's greedy tokens and are kept;
        ``next_token`` is the verifier's token after them. Drafts beyond :meth:`room` are
        not checked (counted as rejected).
        """
        if self.cache is None:
            raise RuntimeError("prefill a prompt before verifying")
        n = len(self.tokens)
        start = self._window_start()
        if start != self.start:  # the window is full: restart it, as generate does
            self.start, self.cache = start, self.model.new_cache()
            feed = self.tokens[start:]
        else:
            feed = self.tokens[-1:]
        checked = [int(t) for t in drafts][: max(0, start + self.context - n)]
        logits = self.model(torch.tensor([feed + checked]), self.cache)[0, -(len(checked) + 1):]
        targets = _argmax(logits)
        accepted = 0
        while accepted < len(checked) and checked[accepted] == targets[accepted]:
            accepted += 1
        self.cache.truncate(n + accepted - self.start)  # keep the window up to the last accepted draft
        self.tokens += checked[:accepted] + [targets[accepted]]
        return accepted, targets[accepted]


class Drafter(_Decoder):
    """The edge side: greedy drafts of a (smaller) sub-network with its own KV cache.

    Its window restarts from the last half of its context when full; what it proposes
    only decides how many tokens a round gains, never which tokens are written.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self._proposed: list[int] = []

    @torch.no_grad()
    def prefill(self, prompt: Sequence[int]) -> int:
        """Read the prompt; returns the draft's own next token (what edge-only decoding writes)."""
        self.tokens = [int(t) for t in prompt]
        if not self.tokens:
            raise ValueError("the prompt needs at least one token")
        self.start = max(0, len(self.tokens) - self.context)
        self.cache = self.model.new_cache()
        self._proposed = []
        return self._next(self.tokens)

    def _next(self, seq: list[int]) -> int:
        feed = seq[self.start + self.cache.length:]
        if not feed:  # everything is cached (drafting right after prefill): read the last token again
            self.cache.truncate(self.cache.length - 1)
            feed = seq[-1:]
        if self.cache.length + len(feed) > self.context:
            self.start = len(seq) - (self.context // 2 or 1)
            self.cache = self.model.new_cache()
            feed = seq[self.start:]
        return _argmax(self.model(torch.tensor([feed]), self.cache)[0, -1:])[0]

    @torch.no_grad()
    def draft(self, k: int) -> list[int]:
        """``k`` greedy tokens after the committed ones (the caller commits with :meth:`commit`)."""
        seq = list(self.tokens)
        for _ in range(k):
            seq.append(self._next(seq))
        self._proposed = seq[len(self.tokens):]
        return list(self._proposed)

    def commit(self, accepted: int, token: int) -> None:
        """Keep the first ``accepted`` drafts and the verifier's ``token``; roll the cache back."""
        kept = len(self.tokens) + accepted
        self.tokens += self._proposed[:accepted] + [int(token)]
        self._proposed = []
        length = kept - self.start
        if length <= 0:  # the window moved past what was kept: start a new one
            self.start = max(0, len(self.tokens) - (self.context // 2 or 1))
            self.cache = self.model.new_cache()
        else:
            self.cache.truncate(length)


@dataclass(frozen=True)
class Speculated:
    """What a speculative decode wrote (``tokens``) and how the drafts fared."""

    tokens: list[int]
    rounds: int
    drafted: int
    accepted: int
    per_round: tuple[int, ...] = ()

    @property
    def acceptance(self) -> float:
        """Share of drafted tokens the verifier accepted."""
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def tokens_per_round(self) -> float:
        """Tokens written per verification (accepted drafts plus the verifier's own)."""
        return (self.accepted + self.rounds) / self.rounds if self.rounds else 0.0


def speculative_generate(draft: nn.Module, verifier: nn.Module, prompt: Sequence[int] | torch.Tensor,
                         max_new_tokens: int, draft_length: int = 4) -> Speculated:
    """Greedy speculative decoding with both models in this process: ``max_new_tokens``
    tokens, equal to ``nas.generate.generate(verifier, prompt, max_new_tokens)``.

    ``draft_length`` tokens are drafted per round (fewer where the verifier's window
    ends); 0 drafts nothing (plain greedy decoding of the verifier).
    """
    if max_new_tokens < 0 or draft_length < 0:
        raise ValueError("max_new_tokens and draft_length must be >= 0")
    ids = [int(t) for t in (prompt.tolist() if isinstance(prompt, torch.Tensor) else prompt)]
    if max_new_tokens == 0:
        return Speculated([], 0, 0, 0)
    cloud, edge = Verifier(verifier), Drafter(draft)
    out = [cloud.prefill(ids)]
    edge.prefill(ids)
    edge.commit(0, out[0])
    drafted = accepted = 0
    per_round: list[int] = []
    while len(out) < max_new_tokens:
        k = min(draft_length, cloud.room(), max_new_tokens - len(out) - 1)
        proposals = edge.draft(k)
        a, token = cloud.verify(proposals)
        edge.commit(a, token)
        out += proposals[:a] + [token]
        drafted, accepted = drafted + k, accepted + a
        per_round.append(a)
    return Speculated(out[:max_new_tokens], len(per_round), drafted, accepted, tuple(per_round))


def check_draft(space: Any, draft: Any, verifier: Any) -> None:
    """Refuse, in one line, a draft that is not a sub-network of ``space`` or not smaller
    than the verifier (a draft must be cheaper per token than what it drafts for)."""
    if getattr(space, "name", None) != "gpt":
        raise EdgenasError(f"speculative decoding needs a language model (space gpt), not space {space.name}")
    for role, arch in (("--draft", draft), ("--verifier", verifier)):
        try:
            space.validate(arch)
        except ValueError as exc:
            raise EdgenasError(f"{role} {arch} is not a sub-network of the cloud model's space ({exc})") from None
    if space.decode_flops(draft) > space.decode_flops(verifier) or space.params(draft) > space.params(verifier):
        raise EdgenasError(
            f"--draft {draft} is larger than the verifier {verifier} ({space.decode_flops(draft) / 1e6:.2f} against "
            f"{space.decode_flops(verifier) / 1e6:.2f} MFLOPs per token): pick a smaller draft (e.g. min)")


@torch.no_grad()
def estimate_acceptance(draft: nn.Module, verifier: nn.Module, prompts: Sequence[Sequence[int]],
                        tokens: int = 48) -> dict[str, Any]:
    """The per-token acceptance rate ``alpha`` of greedy drafts, on ``prompts``.

    The verifier writes ``tokens`` greedy tokens after each prompt (what speculative
    decoding will write); then both models read prompt and continuation once (teacher
    forcing) and ``alpha`` is the share of those positions where the draft's greedy token
    equals the verifier's, i.e. the chance that a draft is accepted given the text so far.
    ``alpha_on_prompts`` is the same share on the prompts themselves (text neither model
    wrote): a briefly trained model's greedy text falls into loops both models continue
    alike, so ``alpha`` can be far above it.
    """
    from nas.generate import generate

    agree = total = text_agree = text_total = 0
    for prompt in prompts:
        ids = torch.tensor([int(t) for t in prompt], dtype=torch.long)[-verifier.arch.context:]
        new = generate(verifier, ids, tokens)
        seq = torch.cat([ids, new])[-min(int(draft.arch.context), int(verifier.arch.context)):]
        n = min(tokens, len(seq) - 1)
        picks = [_argmax(m(seq[None])[0, -n - 1:-1]) for m in (draft, verifier)]
        agree += sum(a == b for a, b in zip(*picks))
        total += n
        text = ids[-min(int(draft.arch.context), int(verifier.arch.context)):]
        if len(text) > 1:  # the prompt itself: text the verifier did not write
            picks = [_argmax(m(text[None])[0, :-1]) for m in (draft, verifier)]
            text_agree += sum(a == b for a, b in zip(*picks))
            text_total += len(text) - 1
    alpha = agree / total if total else 0.0
    return {"alpha": alpha, "prompts": len(prompts), "positions": total,
            "alpha_on_prompts": text_agree / text_total if text_total else None,
            "how": f"greedy continuations of the verifier ({tokens} tokens after each of {len(prompts)} prompts), "
                   "read once by both models: share of positions where the draft's greedy token is the verifier's"}


__all__ = ["Drafter", "Speculated", "Verifier", "check_draft", "estimate_acceptance", "speculative_generate"]
