"""Construction settings of the ``gpt`` space: a CPU-sized ``tiny`` preset and a GPU ``small`` one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the decoder-only transformer supernet and the choices of its sub-networks.

    Every sub-network picks a depth from ``depths``, one embedding width from ``embeds``
    (shared by all its layers: the residual stream), per layer a number of attention heads
    from ``heads`` (each ``head_size`` wide, so attention is ``heads * head_size`` wide) and
    an MLP ratio from ``mlp_ratios`` (hidden width ``ratio * embed``), and a context length
    from ``contexts`` (its longest sequence: position table, prefill length, KV cache).
    The vocabulary is bytes (256) unless told otherwise, so no tokenizer is needed.
    """

    vocab_size: int = 256
    head_size: int = 32
    embeds: tuple[int, ...] = (64, 96, 128)
    depths: tuple[int, ...] = (2, 3, 4)
    heads: tuple[int, ...] = (2, 3, 4)
    mlp_ratios: tuple[int, ...] = (2, 3, 4)
    contexts: tuple[int, ...] = (64, 128)
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("embeds", "depths", "heads", "mlp_ratios", "contexts"):
            values = getattr(self, name)
            if not values or list(values) != sorted(set(values)) or min(values) < 1:
                raise ValueError(f"{name} must be a non-empty increasing list of positive integers, got {values}")
        if self.vocab_size < 2 or self.head_size < 1:
            raise ValueError(f"vocab_size must be >= 2 and head_size >= 1, got {self.vocab_size}, {self.head_size}")
        if not 0 <= self.dropout < 1 or self.layer_norm_eps <= 0:
            raise ValueError("dropout must be in [0, 1) and layer_norm_eps > 0")

    @property
    def max_embed(self) -> int:
        return max(self.embeds)

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def max_heads(self) -> int:
        return max(self.heads)

    @property
    def max_hidden(self) -> int:
        """MLP hidden width of the largest sub-network."""
        return max(self.mlp_ratios) * self.max_embed

    @property
    def max_context(self) -> int:
        return max(self.contexts)

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GPTConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


#: Trains on a 2-core CPU in minutes: at most 4 layers of width 128 (about 0.85 M parameters).
TINY_PRESET = GPTConfig()

#: For the GPU: GPT-2-small sized at the top (12 layers, width 768, 12 heads of 64).
SMALL_PRESET = replace(
    GPTConfig(),
    head_size=64,
    embeds=(384, 512, 640, 768),
    depths=(6, 8, 10, 12),
    heads=(6, 8, 10, 12),
    contexts=(256, 512, 1024),
)

PRESETS: dict[str, GPTConfig] = {"tiny": TINY_PRESET, "small": SMALL_PRESET}
