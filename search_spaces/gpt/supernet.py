"""The ``gpt`` weight-sharing supernet (the cloud language model).

A sub-network is chosen per call: ``supernet(tokens, arch)``, or for a scope with
``with supernet.activate(arch): supernet(tokens)`` (restored on exit, exceptions included).
It runs the first ``arch.depth`` layers at width ``arch.embed``, with the leading heads and
MLP neurons of each; ``extract`` copies it out as a :class:`StaticGPT`, ``absorb`` and
``absorb_many`` write sub-networks' weights back, averaging the slices they cover.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces._supernet import SlicedSupernet
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


class GPTSupernet(SlicedSupernet):
    """Decoder-only transformer supernet: elastic depth, width, heads, MLP ratio and context.

    Example::

        supernet = get_space("gpt", preset="tiny").build_supernet()
        logits = supernet(tokens, arch)           # (batch, tokens, 256)
        model = supernet.extract(arch)            # a StaticGPT with copied weights
    """

    tied = TIED

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

    # --- running a sub-network ---------------------------------------------------
    def forward(self, tokens: torch.Tensor, arch: GPTArch | None = None) -> torch.Tensor:
        """Next-token logits ``(batch, tokens, vocab)`` of sub-network ``arch`` for int64 ``tokens``."""
        arch = self.chosen(arch)
        if tokens.shape[1] > arch.context:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the sub-network's context {arch.context}")
        x = self.embed(tokens, arch.embed)
        for layer, (heads, ratio) in zip(self.layers, arch.layers()):
            x = layer(x, heads, ratio * arch.embed)
        return self.head(x)

    # --- weights in and out (SlicedSupernet) ----------------------------------------
    def static_model(self, arch: GPTArch) -> StaticGPT:
        return StaticGPT(self.config, arch)

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
