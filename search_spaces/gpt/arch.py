"""``GPTArch``: one sub-network of the ``gpt`` space, canonical and hashable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_KEYS = ("embed", "heads", "mlp_ratios", "context")


@dataclass(frozen=True)
class GPTArch:
    """Embedding width, attention heads and MLP ratio of every *active* layer, context length.

    The depth is ``len(heads)``: only the layers that run are listed, so two archs that
    build the same network are equal (the settings of skipped layers cannot differ).
    """

    embed: int
    heads: tuple[int, ...]
    mlp_ratios: tuple[int, ...]
    context: int

    def __post_init__(self) -> None:
        for name in ("heads", "mlp_ratios"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(int(v) for v in value))
        if len(self.heads) != len(self.mlp_ratios):
            raise ValueError(
                f"heads and mlp_ratios need one entry per layer, got {len(self.heads)} and "
                f"{len(self.mlp_ratios)}"
            )

    @property
    def depth(self) -> int:
        """Number of transformer layers."""
        return len(self.heads)

    def layers(self) -> list[tuple[int, int]]:
        """``[(heads, mlp_ratio), ...]`` of the active layers, first to last."""
        return list(zip(self.heads, self.mlp_ratios))

    def to_json(self) -> dict[str, Any]:
        return {
            "embed": self.embed,
            "heads": list(self.heads),
            "mlp_ratios": list(self.mlp_ratios),
            "context": self.context,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> GPTArch:
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise ValueError(f"a gpt arch is a JSON object, got {type(data).__name__}")
        if set(data) != set(_KEYS):
            missing, unknown = set(_KEYS) - set(data), set(data) - set(_KEYS)
            raise ValueError(
                f"gpt arch keys must be {sorted(_KEYS)}"
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unknown {sorted(unknown)}" if unknown else "")
            )
        try:
            return cls(
                embed=int(data["embed"]),
                heads=tuple(int(v) for v in data["heads"]),
                mlp_ratios=tuple(int(v) for v in data["mlp_ratios"]),
                context=int(data["context"]),
            )
        except TypeError as exc:
            raise ValueError(f"malformed gpt arch: {exc}") from None

    def __str__(self) -> str:
        layers = ",".join(f"h{h}r{r}" for h, r in self.layers())
        return f"e{self.embed}c{self.context}:{layers}"
