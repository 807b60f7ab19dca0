"""``ModularArch``: which modules of each layer a sub-model holds (canonical, hashable)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModularArch:
    """Sorted module indices per layer; index ``config.modules`` is the skip module.

    Every layer holds at least one module, so every sub-model runs end to end.
    """

    layers: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        canonical = tuple(tuple(sorted({int(k) for k in layer})) for layer in self.layers)
        object.__setattr__(self, "layers", canonical)
        for i, layer in enumerate(canonical):
            if not layer:
                raise ValueError(f"layer {i} holds no module; every layer needs at least one")
            if layer[0] < 0:
                raise ValueError(f"layer {i} has a negative module index {layer[0]}")

    def to_json(self) -> dict[str, Any]:
        return {"layers": [list(layer) for layer in self.layers]}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> ModularArch:
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict) or set(data) != {"layers"}:
            raise ValueError('a nebula arch is a JSON object {"layers": [[module, ...], ...]}')
        layers = data["layers"]
        if not isinstance(layers, list) or not all(isinstance(layer, list) for layer in layers):
            raise ValueError("nebula arch: layers must be a list of lists of module indices")
        return cls(tuple(tuple(int(k) for k in layer) for layer in layers))

    def modules(self) -> list[tuple[int, int]]:
        """``(layer, module)`` pairs held, in order."""
        return [(i, k) for i, layer in enumerate(self.layers) for k in layer]

    def __str__(self) -> str:
        return "|".join(",".join(map(str, layer)) for layer in self.layers)
