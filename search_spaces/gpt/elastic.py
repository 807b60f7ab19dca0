"""Elastic transformer blocks: weights are leading slices (views) of the largest ones.

Every block holds ``nn.Linear``/``nn.LayerNorm``/``nn.Embedding`` modules of the largest
sub-network under the same names as the static blocks in :mod:`search_spaces.gpt.static`,
and its ``forward`` takes the active sizes: embedding width is the input's last dimension,
heads are a prefix of the head-major rows of ``query``/``key``/``value`` (and columns of
``proj``), MLP neurons a prefix of ``fc``'s rows (and ``proj``'s columns). Layer norms use
the first ``embed`` entries of their weight and bias and normalise over the active width,
exactly as the extracted sub-network's ``nn.LayerNorm(embed)`` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.gpt.static import attend, merge_heads, split_heads


def linear(layer: nn.Linear, x: torch.Tensor, out_features: int) -> torch.Tensor:
    """``layer`` restricted to its first ``out_features`` outputs and ``x.shape[-1]`` inputs."""
    bias = layer.bias[:out_features] if layer.bias is not None else None
    return F.linear(x, layer.weight[:out_features, : x.shape[-1]], bias)


def layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """Layer norm over the active width ``x.shape[-1]`` with the leading affine entries."""
    e = x.shape[-1]
    weight = norm.weight[:e] if norm.weight is not None else None
    bias = norm.bias[:e] if norm.bias is not None else None
    return F.layer_norm(x, (e,), weight, bias, norm.eps)


def _descending(importance: torch.Tensor) -> torch.Tensor:
    return torch.argsort(importance, descending=True, stable=True)


class ElasticEmbedding(nn.Module):
    """Token and position tables of the largest width and context; a prefix of each is used."""

    def __init__(self, vocab: int, max_embed: int, max_context: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, max_embed)
        self.positions = nn.Embedding(max_context, max_embed)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, embed: int) -> torch.Tensor:
        t = tokens.shape[1]
        if t > self.positions.num_embeddings:
            raise ValueError(f"{t} tokens exceed the supernet's context of {self.positions.num_embeddings}")
        x = F.embedding(tokens, self.tokens.weight[:, :embed]) + self.positions.weight[:t, :embed]
        return self.dropout(x)


class ElasticAttention(nn.Module):
    """Pre-norm causal self-attention with elastic width and number of heads (fixed head size)."""

    def __init__(
        self,
        max_embed: int,
        max_heads: int,
        head_size: int,
        dropout: float = 0.0,
        bias: bool = True,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.head_size, self.attn_dropout = head_size, dropout
        inner = max_heads * head_size
        self.norm = nn.LayerNorm(max_embed, eps=eps, bias=bias)
        self.query = nn.Linear(max_embed, inner, bias=bias)
        self.key = nn.Linear(max_embed, inner, bias=bias)
        self.value = nn.Linear(max_embed, inner, bias=bias)
        self.proj = nn.Linear(inner, max_embed, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        inner = heads * self.head_size
        h = layer_norm(self.norm, x)
        q, k, v = (split_heads(linear(lin, h, inner), heads) for lin in (self.query, self.key, self.value))
        y = attend(q, k, v, self.attn_dropout if self.training else 0.0)
        return x + self.dropout(linear(self.proj, merge_heads(y), x.shape[-1]))

    @torch.no_grad()
    def sort_heads(self) -> None:
        """Reorder heads by importance, most important first (the largest network is unchanged).

        A head's importance is the L1 norm of the ``proj`` weights that read its output; its
        rows in ``query``, ``key`` and ``value`` move with it, its internal order does not.
        """
        d = self.head_size
        importance = self.proj.weight.abs().view(self.proj.out_features, -1, d).sum(dim=(0, 2))
        order = _descending(importance)
        rows = (order[:, None] * d + torch.arange(d, device=order.device)).flatten()
        for lin in (self.query, self.key, self.value):
            lin.weight.copy_(lin.weight[rows])
            if lin.bias is not None:
                lin.bias.copy_(lin.bias[rows])
        self.proj.weight.copy_(self.proj.weight[:, rows])


class ElasticMLP(nn.Module):
    """Pre-norm GELU MLP whose width and hidden neurons shrink to a prefix."""

    def __init__(
        self, max_embed: int, max_hidden: int, dropout: float = 0.0, bias: bool = True, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(max_embed, eps=eps, bias=bias)
        self.fc = nn.Linear(max_embed, max_hidden, bias=bias)
        self.proj = nn.Linear(max_hidden, max_embed, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, hidden: int) -> torch.Tensor:
        h = F.gelu(linear(self.fc, layer_norm(self.norm, x), hidden))
        return x + self.dropout(linear(self.proj, h, x.shape[-1]))

    @torch.no_grad()
    def sort_neurons(self) -> None:
        """Reorder hidden neurons by the L1 norm of the ``proj`` weights that read them."""
        order = _descending(self.proj.weight.abs().sum(dim=0))
        self.fc.weight.copy_(self.fc.weight[order])
        if self.fc.bias is not None:
            self.fc.bias.copy_(self.fc.bias[order])
        self.proj.weight.copy_(self.proj.weight[:, order])


class ElasticLayer(nn.Module):
    def __init__(self, attn: ElasticAttention, mlp: ElasticMLP) -> None:
        super().__init__()
        self.attn, self.mlp = attn, mlp

    def forward(self, x: torch.Tensor, heads: int, hidden: int) -> torch.Tensor:
        return self.mlp(self.attn(x, heads), hidden)


class ElasticHead(nn.Module):
    """Final layer norm and the vocabulary projection over the active width (weight tied by the owner)."""

    def __init__(self, max_embed: int, vocab: int, bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(max_embed, eps=eps, bias=bias)
        self.proj = nn.Linear(max_embed, vocab, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(layer_norm(self.norm, x), self.proj.weight[:, : x.shape[-1]])
