"""The network between an edge device and the cloud, as the split planner and the runner see it.

A :class:`Link` is a rate (bits per second, the same both ways), a round-trip time and,
optionally, the radio energy the edge spends per bit it sends or receives. It is written
``RATE,RTT`` on the command line: ``20mbit,40ms`` (rates in ``kbit``, ``mbit`` or ``gbit``
per second; delays in ``ms``, ``us`` or ``s``), optionally ``,100nj`` (radio energy per
bit, in ``nj``, ``uj`` or ``pj``).

One request over a link costs one round trip plus the time to put its bytes on the wire
each way: ``rtt + 8 * (up + down) / rate``, where every message also carries
:data:`FRAME_BYTES` of framing (the runner's header, counted so the prediction and the
run agree). What a real network adds on top (TCP slow start, losses, radio wake-up) is
not modelled.

Example::

    link = parse_link("20mbit,40ms")
    link.request_ms(up_bytes=12_288, down_bytes=40)   # 45.0 ms
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from nas.errors import EdgenasError

FRAME_BYTES = 48
"""Bytes of framing per message (the runner's fixed binary header)."""

PRECISIONS = {"fp32": 4, "fp16": 2, "int8": 1}
"""Bytes per activation value sent across a cut, by precision (int8: per-tensor scale,
counted in the frame header)."""

_RATE = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
_TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_ENERGY = {"pj": 1e-3, "nj": 1.0, "uj": 1e3}
_PART = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z/]+)\s*$")
_EXAMPLE = "write RATE,RTT such as 20mbit,40ms (rates in kbit, mbit or gbit per second; RTT in ms), " \
           "optionally ,100nj for radio energy per bit"


@dataclass(frozen=True)
class Link:
    """A symmetric link: ``rate_bps`` bits per second each way, ``rtt_ms`` round trip, and
    optionally ``energy_nj_per_bit`` the edge's radio spends per bit sent or received."""

    rate_bps: float
    rtt_ms: float
    energy_nj_per_bit: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_bps) and self.rate_bps > 0):
            raise EdgenasError(f"link rate must be a positive number of bits per second, got {self.rate_bps}; {_EXAMPLE}")
        if not (math.isfinite(self.rtt_ms) and self.rtt_ms >= 0):
            raise EdgenasError(f"link round-trip time must be zero or more milliseconds, got {self.rtt_ms}; {_EXAMPLE}")
        if self.energy_nj_per_bit is not None and not (math.isfinite(self.energy_nj_per_bit)
                                                       and self.energy_nj_per_bit >= 0):
            raise EdgenasError(f"radio energy per bit must be zero or more, got {self.energy_nj_per_bit}")

    @property
    def rate_mbps(self) -> float:
        return self.rate_bps / 1e6

    def wire_ms(self, payload_bytes: float) -> float:
        """Time to put one message of ``payload_bytes`` (plus its frame) on the wire."""
        return 8e3 * (payload_bytes + FRAME_BYTES) / self.rate_bps

    def request_ms(self, up_bytes: float, down_bytes: float) -> float:
        """One request: a round trip plus sending ``up_bytes`` and receiving ``down_bytes``."""
        return self.rtt_ms + self.wire_ms(up_bytes) + self.wire_ms(down_bytes)

    def radio_mj(self, up_bytes: float, down_bytes: float) -> float | None:
        """Radio energy of one request on the edge (``None`` without an energy per bit)."""
        if self.energy_nj_per_bit is None:
            return None
        bits = 8 * (up_bytes + down_bytes + 2 * FRAME_BYTES)
        return bits * self.energy_nj_per_bit * 1e-6

    def with_rate(self, rate_bps: float) -> Link:
        return Link(rate_bps, self.rtt_ms, self.energy_nj_per_bit)

    def label(self) -> str:
        """``20mbit,40ms`` (the form :func:`parse_link` reads)."""
        rate = self.rate_bps
        unit = next(u for u in ("gbit", "mbit", "kbit", "bit") if rate >= _RATE[u] or u == "bit")
        text = f"{rate / _RATE[unit]:g}{unit},{self.rtt_ms:g}ms"
        return text + (f",{self.energy_nj_per_bit:g}nj" if self.energy_nj_per_bit is not None else "")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label()}


def _amount(text: str, units: dict[str, float], what: str, original: str) -> float:
    m = _PART.match(text)
    unit = m.group(2).lower().removesuffix("/s") if m else ""
    unit = unit[:-3] + "bit" if unit.endswith("bps") else unit
    if not m or unit not in units:
        raise EdgenasError(f"--link {original!r}: cannot read {what} {text.strip()!r}; {_EXAMPLE}")
    return float(m.group(1)) * units[unit]


def parse_link(text: str) -> Link:
    """``RATE,RTT[,ENERGY]`` (``20mbit,40ms``, ``1.5mbit,100ms,80nj``) as a :class:`Link`;
    anything else is refused in one line saying how to write it."""
    if not isinstance(text, str) or not text.strip():
        raise EdgenasError(f"--link is empty; {_EXAMPLE}")
    parts = [p for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise EdgenasError(f"--link {text!r}: {_EXAMPLE}")
    rate = _amount(parts[0], _RATE, "the rate", text)
    rtt = _amount(parts[1], _TIME, "the round-trip time", text)
    energy = _amount(parts[2], _ENERGY, "the radio energy per bit", text) if len(parts) == 3 else None
    return Link(rate, rtt, energy)


def transfer_bytes(elements: int, precision: str, integer: bool = False) -> int:
    """Bytes of ``elements`` values sent at ``precision`` (integer ids: 4 bytes each, always)."""
    if precision not in PRECISIONS:
        raise EdgenasError(f"precision {precision!r} is unknown; use one of {', '.join(PRECISIONS)}")
    return elements * (4 if integer else PRECISIONS[precision])


__all__ = ["FRAME_BYTES", "PRECISIONS", "Link", "parse_link", "transfer_bytes"]
