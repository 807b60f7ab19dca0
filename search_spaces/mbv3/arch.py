"""``MBV3Arch``: one sub-network of the MobileNetV3 space, canonical and hashable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MBV3Arch:
    """Depth per stage, then kernel and expand ratio of every *active* block, and resolution.

    ``kernels`` and ``expands`` have ``sum(depths)`` entries, stage after stage, so two
    archs that build the same network are equal (unlike OFA's 20-slot lists, where the
    settings of skipped blocks make equal networks look different).
    """

    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    resolution: int

    def __post_init__(self) -> None:
        for name in ("depths", "kernels", "expands"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(int(v) for v in value))
        if len(self.kernels) != sum(self.depths) or len(self.expands) != sum(self.depths):
            raise ValueError(
                f"kernels and expands need sum(depths)={sum(self.depths)} entries, "
                f"got {len(self.kernels)} and {len(self.expands)}"
            )

    def stage_blocks(self) -> list[list[tuple[int, int]]]:
        """``[(kernel, expand), ...]`` of the active blocks, per stage."""
        out, i = [], 0
        for d in self.depths:
            out.append(list(zip(self.kernels[i : i + d], self.expands[i : i + d])))
            i += d
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "depths": list(self.depths),
            "kernels": list(self.kernels),
            "expands": list(self.expands),
            "resolution": self.resolution,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> MBV3Arch:
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise ValueError(f"an mbv3 arch is a JSON object, got {type(data).__name__}")
        expected = {"depths", "kernels", "expands", "resolution"}
        if set(data) != expected:
            missing, unknown = expected - set(data), set(data) - expected
            raise ValueError(
                f"mbv3 arch keys must be {sorted(expected)}"
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unknown {sorted(unknown)}" if unknown else "")
            )
        try:
            return cls(
                depths=tuple(int(v) for v in data["depths"]),
                kernels=tuple(int(v) for v in data["kernels"]),
                expands=tuple(int(v) for v in data["expands"]),
                resolution=int(data["resolution"]),
            )
        except TypeError as exc:
            raise ValueError(f"malformed mbv3 arch: {exc}") from None

    def __str__(self) -> str:
        stages = "|".join(
            ",".join(f"k{k}e{e}" for k, e in blocks) for blocks in self.stage_blocks()
        )
        return f"r{self.resolution}:{stages}"
