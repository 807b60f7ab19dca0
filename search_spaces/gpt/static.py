"""Plain (static) decoder-only transformer modules: what ``extract`` returns and devices run.

A model is the blocks that cost prediction times one by one: :class:`TokenEmbedding`,
then per layer an :class:`Attention` block and an :class:`MLP` block (pre-norm, each with
its residual), then the :class:`Head` (final norm and the projection to the vocabulary,
tied to the token embedding). Parameter names match the supernet's
(``layers.2.attn.query.weight``...), so copying weights out and back is a name-by-name
prefix slice.

Keys and values of earlier tokens live in a :class:`KVCache`; ``model(tokens, cache)``
appends the new tokens' keys and values to it, so decoding runs one token at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.gpt.arch import GPTArch
from search_spaces.gpt.config import GPTConfig


class LayerCache:
    """Keys and values of one layer, ``(batch, heads, tokens, head_size)`` each."""

    def __init__(self, keys: torch.Tensor | None = None, values: torch.Tensor | None = None) -> None:
        self.keys, self.values = keys, values

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new tokens' keys and values; returns those of every token so far."""
        if self.keys is not None and self.values is not None:
            keys = torch.cat([self.keys, keys], dim=2)
            values = torch.cat([self.values, values], dim=2)
        self.keys, self.values = keys, values
        return keys, values


class KVCache:
    """Per-layer keys and values of the tokens a model has seen (its decoding state)."""

    def __init__(self, layers: list[LayerCache]) -> None:
        self.layers = layers

    @classmethod
    def empty(cls, depth: int) -> KVCache:
        return cls([LayerCache() for _ in range(depth)])

    @property
    def length(self) -> int:
        """Tokens cached so far (the position of the next token)."""
        return self.layers[0].length if self.layers else 0

    def truncate(self, length: int) -> None:
        """Forget every token after the first ``length`` (roll back rejected tokens of
        speculative decoding); a ``length`` at or past the end changes nothing."""
        if length < 0:
            raise ValueError(f"cannot keep {length} tokens")
        for layer in self.layers:
            if layer.keys is not None and layer.values is not None and layer.length > length:
                layer.keys, layer.values = layer.keys[:, :, :length], layer.values[:, :, :length]

    def nbytes(self) -> int:
        """Bytes held by the cached keys and values."""
        return sum(
            t.numel() * t.element_size()
            for layer in self.layers
            for t in (layer.keys, layer.values)
            if t is not None
        )


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(batch, tokens, heads * size)`` -> ``(batch, heads, tokens, size)``."""
    b, t, _ = x.shape
    return x.view(b, t, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(batch, heads, tokens, size)`` -> ``(batch, tokens, heads * size)``."""
    b, _, t, _ = x.shape
    return x.transpose(1, 2).reshape(b, t, -1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
    """Causal attention of the last ``q.shape[2]`` tokens over all ``k.shape[2]`` tokens.

    Uses ``scaled_dot_product_attention`` (scale ``1/sqrt(head_size)``): causal when queries
    and keys are the same tokens (prefill), unmasked for one new token (decode), and with an
    explicit mask for several new tokens after a cache.
    """
    tq, tk = q.shape[2], k.shape[2]
    if tq == tk:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
    if tq == 1:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(tk - tq)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


class TokenEmbedding(nn.Module):
    """Token plus learned position embedding: ``(batch, tokens)`` int64 ids -> ``(batch, tokens, embed)``.

    ``positions`` rows are learned (the sub-network's context); ``start`` is the position of
    the first token when ``forward`` is not told (the decode-phase block embeds position
    ``context - 1``).
    """

    def __init__(
        self, vocab: int, embed: int, positions: int, dropout: float = 0.0, start: int = 0
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, embed)
        self.positions = nn.Embedding(positions, embed)
        self.dropout = nn.Dropout(dropout)
        self.start = start

    def forward(self, tokens: torch.Tensor, start: int | None = None) -> torch.Tensor:
        start = self.start if start is None else start
        end = start + tokens.shape[1]
        if end > self.positions.num_embeddings:
            raise ValueError(
                f"{end} tokens exceed the context of {self.positions.num_embeddings} positions"
            )
        pos = torch.arange(start, end, device=tokens.device)
        return self.dropout(self.tokens(tokens) + self.positions(pos))


class Attention(nn.Module):
    """Pre-norm causal self-attention with its residual: ``x + proj(attn(norm(x)))``.

    Queries, keys and values have separate projections, each ``heads * head_size`` wide
    with the heads side by side, so a sub-network's heads are a prefix of every weight.
    """

    def __init__(
        self,
        embed: int,
        heads: int,
        head_size: int,
        dropout: float = 0.0,
        bias: bool = True,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.heads, self.head_size, self.attn_dropout = heads, head_size, dropout
        inner = heads * head_size
        self.norm = nn.LayerNorm(embed, eps=eps, bias=bias)
        self.query = nn.Linear(embed, inner, bias=bias)
        self.key = nn.Linear(embed, inner, bias=bias)
        self.value = nn.Linear(embed, inner, bias=bias)
        self.proj = nn.Linear(inner, embed, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = (split_heads(lin(h), self.heads) for lin in (self.query, self.key, self.value))
        if cache is not None:
            k, v = cache.append(k, v)
        y = attend(q, k, v, self.attn_dropout if self.training else 0.0)
        return x + self.dropout(self.proj(merge_heads(y)))


class MLP(nn.Module):
    """Pre-norm GELU MLP with its residual: ``x + proj(gelu(fc(norm(x))))``."""

    def __init__(
        self, embed: int, hidden: int, dropout: float = 0.0, bias: bool = True, eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed, eps=eps, bias=bias)
        self.fc = nn.Linear(embed, hidden, bias=bias)
        self.proj = nn.Linear(hidden, embed, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.proj(F.gelu(self.fc(self.norm(x)))))


class Head(nn.Module):
    """Final layer norm and projection to next-token logits (no bias).

    In a model the projection's weight *is* the token embedding (tied); a head built alone
    (for timing) holds its own copy.
    """

    def __init__(self, embed: int, vocab: int, bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(embed, eps=eps, bias=bias)
        self.proj = nn.Linear(embed, vocab, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(x))


class Layer(nn.Module):
    """One transformer layer: an attention block, then an MLP block."""

    def __init__(self, cfg: GPTConfig, embed: int, heads: int, hidden: int) -> None:
        super().__init__()
        eps = cfg.layer_norm_eps
        self.attn = Attention(embed, heads, cfg.head_size, cfg.dropout, cfg.bias, eps)
        self.mlp = MLP(embed, hidden, cfg.dropout, cfg.bias, eps)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        return self.mlp(self.attn(x, cache))


class StaticGPT(nn.Module):
    """A sub-network of the ``gpt`` space as a plain ``nn.Module`` (no elastic ops).

    ``model(tokens)`` maps ``(batch, tokens)`` int64 ids to ``(batch, tokens, vocab)``
    logits; with a :class:`KVCache` (``model.new_cache()``) the tokens continue the cached
    ones and their keys and values are appended to it.
    """

    def __init__(self, cfg: GPTConfig, arch: GPTArch) -> None:
        super().__init__()
        self.config, self.arch = cfg, arch
        e = arch.embed
        self.embed = TokenEmbedding(cfg.vocab_size, e, arch.context, cfg.dropout)
        self.layers = nn.ModuleList(Layer(cfg, e, h, r * e) for h, r in arch.layers())
        self.head = Head(e, cfg.vocab_size, cfg.bias, cfg.layer_norm_eps)
        self.head.proj.weight = self.embed.tokens.weight  # tied input and output embeddings

    def new_cache(self) -> KVCache:
        return KVCache.empty(len(self.layers))

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = self.embed(tokens, cache.length if cache is not None else 0)
        for i, layer in enumerate(self.layers):
            x = layer(x, cache.layers[i] if cache is not None else None)
        return self.head(x)


class CachedAttention(nn.Module):
    """An attention block decoding new tokens after ``past`` cached ones (the decode phase).

    The cache is two non-persistent buffers ``past_keys``/``past_values`` of shape
    ``(1, heads, past, head_size)`` (expanded over the batch), so the block takes one input
    like every other block; the new token's keys and values are concatenated to them.
    """

    def __init__(self, block: Attention, past: int) -> None:
        super().__init__()
        self.block = block
        shape = (1, block.heads, past, block.head_size)
        self.register_buffer("past_keys", torch.randn(shape), persistent=False)
        self.register_buffer("past_values", torch.randn(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        cache = LayerCache(self.past_keys.expand(b, -1, -1, -1), self.past_values.expand(b, -1, -1, -1))
        return self.block(x, cache)


class DecodeStep(nn.Module):
    """A whole model decoding one token after ``past`` cached tokens (whole-network decode timing).

    Per layer the cache is a pair of non-persistent buffers ``keys_i``/``values_i``
    (``(1, heads_i, past, head_size)``); ``forward(tokens)`` takes ``(batch, 1)`` ids at
    position ``past`` and returns ``(batch, 1, vocab)`` logits, leaving the buffers unchanged.
    """

    def __init__(self, model: StaticGPT, past: int) -> None:
        super().__init__()
        self.model = model
        self.past = past
        for i, layer in enumerate(model.layers):
            shape = (1, layer.attn.heads, past, layer.attn.head_size)
            self.register_buffer(f"keys_{i}", torch.randn(shape), persistent=False)
            self.register_buffer(f"values_{i}", torch.randn(shape), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        cache = KVCache(
            [
                LayerCache(
                    getattr(self, f"keys_{i}").expand(b, -1, -1, -1),
                    getattr(self, f"values_{i}").expand(b, -1, -1, -1),
                )
                for i in range(len(self.model.layers))
            ]
        )
        return self.model(tokens, cache)


@torch.no_grad()
def init_weights(module: nn.Module, depth: int = 1) -> None:
    """GPT-2's initialisation: normal(0, 0.02) weights, zero biases, unit layer norms, and
    residual projections scaled by ``1/sqrt(2 * depth)``."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            residual = name.endswith(("attn.proj", "mlp.proj"))
            std = 0.02 / math.sqrt(2 * depth) if residual else 0.02
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
