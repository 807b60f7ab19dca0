"""``NB201Arch``: one NAS-Bench-201 cell (an operation on each of its six edges).

The cell is a DAG of four nodes; node ``i`` sums an operation applied to every earlier
node, so there are six edges, in the order the benchmark's cell string lists them::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
     1<-0   2<-0 2<-1   3<-0 3<-1 3<-2

Five operations per edge give 5**6 = 15,625 cells. The benchmark numbers its cells in an
order that no formula reproduces (it is the order of the released benchmark files), so
that order ships with the package in ``nb201_order.txt``: line ``i`` holds the six
operation codes (digits, indices into :data:`OPS`) of NB201 index ``i``. It was written
from the ``arch``/``cellstr`` columns of ``shared/data/nb201/accuracy.csv``, and the test
suite checks it against that file row by row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The five candidate operations; their position is the op code used in encodings."""

EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""``(to_node, from_node)`` of each edge, in cell-string order."""

NUM_ARCHS = len(OPS) ** len(EDGES)

_ORDER_FILE = Path(__file__).with_name("nb201_order.txt")


@dataclass(frozen=True)
class NB201Arch:
    """The operation name on each of the six edges (see :data:`EDGES` for their order).

    Example::

        arch = NB201Arch.from_str("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                                  "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
        arch.index          # 1, its NAS-Bench-201 index
        NB201Arch.from_index(1) == arch
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))
        if len(self.ops) != len(EDGES):
            raise ValueError(f"an nb201 cell has {len(EDGES)} edges, got {len(self.ops)} ops")
        for op in self.ops:
            if op not in OPS:
                raise ValueError(f"unknown nb201 op {op!r}; ops are {list(OPS)}")

    # --- codes and indices ----------------------------------------------------------
    @property
    def codes(self) -> tuple[int, ...]:
        """Op code (position in :data:`OPS`) of each edge."""
        return tuple(OPS.index(op) for op in self.ops)

    @property
    def index(self) -> int:
        """The NAS-Bench-201 index of this cell (0..15,624; rows of the benchmark's tables)."""
        return _code_to_index()[self.codes]

    @classmethod
    def from_codes(cls, codes: tuple[int, ...] | list[int]) -> NB201Arch:
        bad = [c for c in codes if not 0 <= int(c) < len(OPS)]
        if bad:
            raise ValueError(f"nb201 op codes are 0..{len(OPS) - 1}, got {bad[0]}")
        return cls(tuple(OPS[int(c)] for c in codes))

    @classmethod
    def from_index(cls, index: int) -> NB201Arch:
        """The cell with NAS-Bench-201 index ``index``."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"an nb201 index is an int, got {type(index).__name__}")
        if not 0 <= index < NUM_ARCHS:
            raise ValueError(f"nb201 index {index} out of range 0..{NUM_ARCHS - 1}")
        return cls.from_codes(_index_to_codes()[index])

    # --- structure --------------------------------------------------------------------
    def op_counts(self) -> tuple[int, ...]:
        """How many edges carry each op other than ``none`` (``OPS[1:]`` order).

        Every edge of a cell maps ``C`` channels to ``C`` at one resolution, so a cell's
        cost is close to additive in these counts: they are the natural cost features."""
        return tuple(sum(op == name for op in self.ops) for name in OPS[1:])

    def dead_op_counts(self) -> tuple[int, ...]:
        """Of :meth:`op_counts`, the edges whose result never reaches the cell's output
        node (their target node feeds nothing that does), in ``OPS[1:]`` order.

        A runtime that removes dead code (e.g. a mobile converter pruning unused
        outputs) does not execute these edges, so on such a device the cost follows
        ``op_counts() - dead_op_counts()``; elsewhere they cost like any other edge."""
        feeds_output = [False, False, False, True]
        for (to_node, from_node), op in reversed(list(zip(EDGES, self.ops))):
            if op != "none" and feeds_output[to_node]:
                feeds_output[from_node] = True
        return tuple(
            sum(op == name and not feeds_output[to_node] for (to_node, _), op in zip(EDGES, self.ops))
            for name in OPS[1:]
        )

    @property
    def connected(self) -> bool:
        """Whether the output node depends on the input (otherwise the cell outputs zeros,
        and a compiler that removes dead code may drop the whole network)."""
        reach = [True, False, False, False]
        for (to_node, from_node), op in zip(EDGES, self.ops):
            reach[to_node] = reach[to_node] or (op != "none" and reach[from_node])
        return reach[3]

    # --- cell strings ---------------------------------------------------------------
    @classmethod
    def from_str(cls, cell: str) -> NB201Arch:
        """Parse the benchmark's cell string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        text = cell.strip()
        nodes = text.strip("|").split("|+|") if text.startswith("|") else []
        if len(nodes) != 3:
            raise ValueError(f"malformed nb201 cell string {cell!r}: need 3 nodes '|...|+|...|+|...|'")
        ops = []
        for to_node, node in enumerate(nodes, start=1):
            tokens = node.split("|")
            if len(tokens) != to_node:
                raise ValueError(f"malformed nb201 cell string {cell!r}: node {to_node} needs {to_node} inputs")
            for from_node, token in enumerate(tokens):
                op, _, src = token.partition("~")
                if src != str(from_node):
                    raise ValueError(f"malformed nb201 cell string {cell!r}: expected '~{from_node}' in {token!r}")
                if op not in OPS:
                    raise ValueError(f"unknown nb201 op {op!r} in cell string; ops are {list(OPS)}")
                ops.append(op)
        return cls(tuple(ops))

    def to_str(self) -> str:
        """The benchmark's cell string (inverse of :meth:`from_str`)."""
        parts, i = [], 0
        for to_node in (1, 2, 3):
            parts.append("|" + "|".join(f"{self.ops[i + j]}~{j}" for j in range(to_node)) + "|")
            i += to_node
        return "+".join(parts)

    def __str__(self) -> str:
        return self.to_str()

    # --- JSON -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"ops": list(self.ops)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> NB201Arch:
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict) or set(data) != {"ops"}:
            raise ValueError(f"an nb201 arch is a JSON object {{'ops': [6 op names]}}, got {data!r}")
        if not isinstance(data["ops"], list | tuple):
            raise ValueError(f"nb201 'ops' must be a list of {len(EDGES)} op names")
        return cls(tuple(data["ops"]))


@lru_cache(maxsize=1)
def _index_to_codes() -> tuple[tuple[int, ...], ...]:
    lines = _ORDER_FILE.read_text().split()
    if len(lines) != NUM_ARCHS:
        raise RuntimeError(f"{_ORDER_FILE} has {len(lines)} cells, expected {NUM_ARCHS}: reinstall edgenas")
    return tuple(tuple(int(ch) for ch in line) for line in lines)


@lru_cache(maxsize=1)
def _code_to_index() -> dict[tuple[int, ...], int]:
    return {codes: i for i, codes in enumerate(_index_to_codes())}
