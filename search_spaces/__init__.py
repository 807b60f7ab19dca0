"""What can be built: search spaces, their architectures, blocks and elastic supernets.

Importable with torch and numpy alone (Optuna, TVM and the rest are never imported here).

Example::

    import random
    from search_spaces import get_space

    space = get_space("mbv3", preset="small")
    arch = space.sample(random.Random(0))
    print(space.flops(arch), space.params(arch), len(space.blocks(arch)))
"""

from search_spaces._base import Arch, BlockSpec, Cut, SearchSpace
from search_spaces._registry import get_space, list_spaces, register_space, space_from_description
from search_spaces.gpt import GPTArch, GPTConfig, GPTSpace, GPTSupernet
from search_spaces.mbv3 import MBV3Arch, MBV3Config, MobileNetV3Space, MobileNetV3Supernet
from search_spaces.modular import ModularArch, NebulaSpace
from search_spaces.nb201 import NB201Arch, NB201Space

__all__ = [
    "Arch",
    "BlockSpec",
    "Cut",
    "GPTArch",
    "GPTConfig",
    "GPTSpace",
    "GPTSupernet",
    "MBV3Arch",
    "MBV3Config",
    "MobileNetV3Space",
    "MobileNetV3Supernet",
    "ModularArch",
    "NB201Arch",
    "NB201Space",
    "NebulaSpace",
    "SearchSpace",
    "get_space",
    "list_spaces",
    "register_space",
    "space_from_description",
]
