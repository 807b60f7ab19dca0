"""An elastic decoder-only transformer space (byte-level language models) and its supernet."""

from search_spaces.gpt.arch import GPTArch
from search_spaces.gpt.config import PRESETS, SMALL_PRESET, TINY_PRESET, GPTConfig
from search_spaces.gpt.space import PHASES, GPTSpace
from search_spaces.gpt.static import DecodeStep, KVCache, StaticGPT
from search_spaces.gpt.supernet import GPTSupernet

__all__ = [
    "DecodeStep",
    "GPTArch",
    "GPTConfig",
    "GPTSpace",
    "GPTSupernet",
    "KVCache",
    "PHASES",
    "PRESETS",
    "SMALL_PRESET",
    "StaticGPT",
    "TINY_PRESET",
]
