"""Construction settings of the MobileNetV3 space: OFA's default and a small CPU preset."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` without going more than 10 % below it.

    The rounding of MobileNet/TF and OFA, so channel counts match their published models.
    """
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class MBV3Config:
    """Shape of the MobileNetV3 supernet (channels before the width multiplier).

    Five elastic stages follow a fixed stem and a fixed first block, as in OFA's
    ``OFAMobileNetV3``. ``width_mult`` scales every channel count at construction
    (``feature_mix`` is only scaled up, as in OFA).
    """

    stem_channels: int = 16
    stem_stride: int = 2
    first_block_channels: int = 16
    stage_channels: tuple[int, ...] = (24, 40, 80, 112, 160)
    stage_strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    stage_activations: tuple[str, ...] = ("relu", "relu", "hswish", "hswish", "hswish")
    stage_se: tuple[bool, ...] = (False, True, False, True, True)
    final_expand: int = 960
    feature_mix: int = 1280
    width_mult: float = 1.0
    depths: tuple[int, ...] = (2, 3, 4)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (3, 4, 6)
    resolutions: tuple[int, ...] = (128, 160, 192, 224)
    num_classes: int = 1000
    in_channels: int = 3
    dropout: float = 0.1

    def __post_init__(self) -> None:
        n = len(self.stage_channels)
        for name in ("stage_strides", "stage_activations", "stage_se"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs one entry per stage ({n}), got {getattr(self, name)}")
        for name in ("depths", "kernels", "expands", "resolutions"):
            values = getattr(self, name)
            if not values or list(values) != sorted(set(values)):
                raise ValueError(f"{name} must be a non-empty increasing list, got {values}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels must be odd, got {self.kernels}")
        if min(self.depths) < 1:
            raise ValueError(f"depths must be at least 1, got {self.depths}")
        for act in self.stage_activations:
            if act not in ("relu", "hswish"):
                raise ValueError(f"unknown activation {act!r}; use relu or hswish")
        if self.width_mult <= 0 or self.num_classes < 2 or not 0 <= self.dropout < 1:
            raise ValueError("width_mult must be > 0, num_classes >= 2 and 0 <= dropout < 1")

    # channel counts after the width multiplier
    def width(self, channels: int) -> int:
        return make_divisible(channels * self.width_mult)

    @property
    def stem_width(self) -> int:
        return self.width(self.stem_channels)

    @property
    def first_block_width(self) -> int:
        return self.width(self.first_block_channels)

    @property
    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self.width(c) for c in self.stage_channels)

    @property
    def final_expand_width(self) -> int:
        return self.width(self.final_expand)

    @property
    def feature_mix_width(self) -> int:
        if self.width_mult > 1.0:
            return self.width(self.feature_mix)
        return self.feature_mix

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MBV3Config:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**fields)


#: OFA's ImageNet-sized space (``ofa_mbv3_d234_e346_k357_w1.0``).
OFA_PRESET = MBV3Config()

#: A small space for CPUs and 32x32 inputs (digits, CIFAR): a stride-1 first stage so
#: 32x32 inputs keep a 2x2 map at the last stage, half width, a narrower head.
SMALL_PRESET = replace(
    MBV3Config(),
    stage_strides=(1, 2, 2, 1, 2),
    width_mult=0.5,
    feature_mix=256,
    final_expand=640,
    resolutions=(24, 28, 32),
    num_classes=10,
    dropout=0.0,
)

PRESETS: dict[str, MBV3Config] = {"ofa": OFA_PRESET, "small": SMALL_PRESET}
