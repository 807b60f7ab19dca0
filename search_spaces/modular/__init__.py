"""Nebula's modular decomposition as a search space (``get_space("nebula", preset=...)``)."""

from search_spaces.modular.arch import ModularArch
from search_spaces.modular.config import PRESETS, ModularConfig
from search_spaces.modular.network import ModularNet, Selector, ShrunkModule, top_k_gates
from search_spaces.modular.space import NebulaSpace

__all__ = [
    "PRESETS",
    "ModularArch",
    "ModularConfig",
    "ModularNet",
    "NebulaSpace",
    "Selector",
    "ShrunkModule",
    "top_k_gates",
]
