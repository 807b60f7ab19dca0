"""NAS-Bench-201: its cells (``NB201Arch``), the ``nb201`` space and the benchmark network."""

from search_spaces.nb201.arch import EDGES, NUM_ARCHS, OPS, NB201Arch
from search_spaces.nb201.space import NB201Space
from search_spaces.nb201.static import NB201Network

__all__ = ["EDGES", "NUM_ARCHS", "NB201Arch", "NB201Network", "NB201Space", "OPS"]
