"""The ``gpt`` weight-sharing supernet (the cloud language model).

A sub-network is chosen per call: ``supernet(tokens, arch)``, or for a scope with
``with supernet.activate(arch): supernet(tokens)`` (restored on exit, exceptions included).
It runs the first ``arch.depth`` layers at width ``arch.embed``, with the leading heads and
MLP neurons of each; ``extract`` copies it out as a :class:`StaticGPT`, ``absorb`` and
``absorb_many`` write sub-networks' weights back, averaging the slices they cover.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from search_spaces.gpt.arch import GPTArch
from search_spaces.gpt.config import GPTConfig
from search_spaces.gpt.elastic import (
    ElasticAttention,
    ElasticEmbedding,
    ElasticHead,
    ElasticLayer,
    ElasticMLP,
)
from search_spaces.gpt.static import StaticGPT, init_weights

#: State-dict names that are aliases of another tensor (the head's weight is the token table).
TIED = {"head.proj.weight": "embed.tokens.weight"}


def _prefix(big: torch.Size, small: torch.Size) -> tuple[slice, ...]:
    if len(big) != len(small) or any(s > b for s, b in zip(small, big)):
        raise ValueError(f"a {tuple(small)} tensor is not a prefix of a {tuple(big)} one")
    return tuple(slice(0, s) for s in small)


class GPTSupernet(nn.Module):
    """Decoder-only transformer supernet: elastic depth, width, heads, MLP ratio and context.

    Example::

        supernet = get_space("gpt", preset="tiny").build_supernet()
        logits = supernet(tokens, arch)           # (batch, tokens, 256)
        model = supernet.extract(arch)            # a StaticGPT with copied weights
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        e, eps = cfg.max_embed, cfg.layer_norm_eps
        self.embed = ElasticEmbedding(cfg.vocab_size, e, cfg.max_context, cfg.dropout)
        self.layers = nn.ModuleList(
            ElasticLayer(
                ElasticAttention(e, cfg.max_heads, cfg.head_size, cfg.dropout, cfg.bias, eps),
                ElasticMLP(e, cfg.max_hidden, cfg.dropout, cfg.bias, eps),
            )
            for _ in range(cfg.max_depth)
        )
        self.head = ElasticHead(e, cfg.vocab_size, cfg.bias, eps)
        self.head.proj.weight = self.embed.tokens.weight
        init_weights(self, cfg.max_depth)
        self._active: GPTArch | None = None

    # --- running a sub-network ---------------------------------------------------
    def forward(self, tokens: torch.Tensor, arch: GPTArch | None = None) -> torch.Tensor:
        """Next-token logits ``(batch, tokens, vocab)`` of sub-network ``arch`` for int64 ``tokens``."""
        arch = arch if arch is not None else self._active
        if arch is None:
            raise RuntimeError(
                "no sub-network chosen: call supernet(tokens, arch) or use `with supernet.activate(arch):`"
            )
        if tokens.shape[1] > arch.context:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the sub-network's context {arch.context}")
        x = self.embed(tokens, arch.embed)
        for layer, (heads, ratio) in zip(self.layers, arch.layers()):
            x = layer(x, heads, ratio * arch.embed)
        return self.head(x)

    @contextmanager
    def activate(self, arch: GPTArch) -> Iterator[GPTSupernet]:
        """Scope in which ``supernet(tokens)`` runs ``arch``; the previous choice is restored after."""
        previous, self._active = self._active, arch
        try:
            yield self
        finally:
            self._active = previous

    # --- weights in and out --------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: GPTArch) -> StaticGPT:
        """A plain :class:`StaticGPT` of ``arch`` holding copies of the weights it uses."""
        static = StaticGPT(self.config, arch)
        source = self.state_dict()
        for name, tensor in static.state_dict().items():
            big = source[name]
            tensor.copy_(big[_prefix(big.shape, tensor.shape)])
        like = next(self.parameters())
        return static.to(device=like.device, dtype=like.dtype).train(self.training)

    @torch.no_grad()
    def absorb(self, arch: GPTArch, module: nn.Module, weight: float = 1.0) -> None:
        """Blend a sub-network's weights into the slices it covers.

        ``new = (1 - weight) * old + weight * sub`` on every element ``module`` covers;
        elements it does not cover (later layers, heads, neurons, width, positions) are untouched.
        """
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"absorb weight must be in (0, 1], got {weight}")
        self.absorb_many([(arch, module, weight)], keep=1.0 - weight)

    @torch.no_grad()
    def absorb_many(
        self, updates: Sequence[tuple[GPTArch, nn.Module, float]], keep: float = 0.0
    ) -> None:
        """Weighted average of several sub-networks, element by element (block-wise aggregation).

        Each element becomes ``(keep * old + sum_i w_i * sub_i) / (keep + sum_i w_i)`` over the
        updates that cover it; elements no update covers are untouched. ``keep`` weighs the
        cloud model's current value (0 replaces covered elements by the updates' average).
        """
        if keep < 0 or any(w < 0 for _, _, w in updates):
            raise ValueError("absorb weights must be non-negative")
        target = self.state_dict()
        totals: dict[str, torch.Tensor] = {}
        weights: dict[str, torch.Tensor] = {}
        states = [(self._checked_state(arch, module), w) for arch, module, w in updates]
        for state, w in states:
            for name, tensor in state.items():
                big = target[name]
                if name not in totals:
                    totals[name] = torch.zeros_like(big, dtype=torch.float32)
                    weights[name] = torch.zeros_like(big, dtype=torch.float32)
                where = _prefix(big.shape, tensor.shape)
                totals[name][where] += w * tensor.detach().float().to(big.device)
                weights[name][where] += w
        for name, total in totals.items():
            big, w = target[name], weights[name]
            blended = (keep * big.float() + total) / (keep + w).clamp_min(1e-12)
            big.copy_(torch.where(w > 0, blended, big.float()).to(big.dtype))

    def _checked_state(self, arch: GPTArch, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module``'s state without tied aliases, after checking it is exactly ``arch``."""
        state = module.state_dict()
        expected = {k: v.shape for k, v in StaticGPT(self.config, arch).state_dict().items()}
        got = {k: v.shape for k, v in state.items()}
        if expected != got:
            missing = sorted(set(expected) - set(got))[:3]
            unknown = sorted(set(got) - set(expected))[:3]
            wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])[:3]
            raise ValueError(
                f"module does not match arch {arch}: missing {missing}, unexpected {unknown}, "
                f"wrong shapes {wrong}"
            )
        for alias, name in TIED.items():
            if not torch.equal(state[alias], state[name]):
                raise ValueError(f"module for arch {arch} has {alias} untied from {name}")
            del state[alias]
        for name, tensor in state.items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ValueError(f"module for arch {arch} has non-finite values in {name}")
        return state

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Sort every layer's heads and MLP neurons by importance, before shrinking them.

        The largest sub-network computes exactly the same function afterwards; smaller ones
        then keep the heads and neurons that matter most. (Optimizer state keyed on these
        parameters no longer lines up: sort before training a phase, not in the middle.)
        """
        for layer in self.layers:
            layer.attn.sort_heads()
            layer.mlp.sort_neurons()
