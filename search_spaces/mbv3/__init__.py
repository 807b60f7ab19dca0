"""OFA's MobileNetV3 search space and its elastic supernet."""

from search_spaces.mbv3.arch import MBV3Arch
from search_spaces.mbv3.config import OFA_PRESET, PRESETS, SMALL_PRESET, MBV3Config
from search_spaces.mbv3.space import MobileNetV3Space
from search_spaces.mbv3.static import StaticMobileNetV3
from search_spaces.mbv3.supernet import MobileNetV3Supernet

__all__ = [
    "MBV3Arch",
    "MBV3Config",
    "MobileNetV3Space",
    "MobileNetV3Supernet",
    "OFA_PRESET",
    "PRESETS",
    "SMALL_PRESET",
    "StaticMobileNetV3",
]
