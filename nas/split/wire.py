"""Messages between the edge and the cloud process, over TCP on 127.0.0.1, through an emulated link.

Every message is one fixed binary header of :data:`~nas.split.link.FRAME_BYTES` bytes and
a tensor payload (float32, float16, int8 with a per-tensor scale, or integer ids). The
link is enforced in software at both ends, so it needs no privileges and touches no
interface: the sender stamps each message with the moment its last bit would leave a
link of the given rate (messages queue behind each other: the link is busy until then),
and the receiver hands the message over one one-way delay (half the round trip) after
that moment. Loopback itself is fast enough (gigabytes per second) to vanish beside any
emulated rate up to a few hundred Mbit/s. Both ends read the same clock
(``time.monotonic``, system-wide on Linux), which is why both processes must run on one
machine. (Linux ``tc netem`` would do the same in the kernel; this container's kernel
has no netem, and loopback is shared with other processes, so it is not used.)

Every wait has a deadline: a peer that stops answering raises :class:`LinkClosed` or
:class:`LinkTimeout` instead of hanging.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

import numpy as np

from nas.split.link import FRAME_BYTES, Link

MAGIC = b"ESPL"
HEADER = struct.Struct("!4sBBBxIfd4Iff")
assert HEADER.size == FRAME_BYTES

REQUEST, REPLY, ERROR, HELLO, READY, BYE, RELINK = 1, 2, 3, 4, 5, 6, 7
PROMPT, STREAM = 8, 9  # speculative decoding: a prompt to prefill; a prompt to decode and stream back
READINGS = 10  # a split's drift correction: the cloud's reference readings, asked for after the requests
DTYPES = {0: np.float32, 1: np.float16, 2: np.int8, 3: np.int32, 4: np.int64}
_CODES = {np.dtype(v): k for k, v in DTYPES.items()}


class LinkClosed(ConnectionError):
    """The peer closed the connection (or its process died)."""


class LinkTimeout(TimeoutError):
    """The peer did not answer before the deadline."""


@dataclass
class Message:
    """One decoded message: ``kind``, request ``id``, the tensor (``None`` if empty), and the
    sender's compute time for it (wall and thread CPU, ms; 0 when not a reply)."""

    kind: int
    id: int
    array: np.ndarray | None
    wall_ms: float = 0.0
    cpu_ms: float = 0.0


def encode(array: np.ndarray | None, precision: str) -> tuple[np.ndarray | None, float]:
    """``array`` as it crosses the link: float32, float16, or int8 with a scale (integer ids as int32)."""
    if array is None:
        return None, 0.0
    if not np.issubdtype(array.dtype, np.floating):
        return np.ascontiguousarray(array, dtype=np.int32), 0.0
    if precision == "fp16":
        return np.ascontiguousarray(array, dtype=np.float16), 0.0
    if precision == "int8":
        peak = float(np.max(np.abs(array))) if array.size else 0.0
        scale = peak / 127.0 if peak > 0 else 1.0
        return np.clip(np.rint(array / scale), -127, 127).astype(np.int8), scale
    return np.ascontiguousarray(array, dtype=np.float32), 0.0


def decode(array: np.ndarray | None, scale: float) -> np.ndarray | None:
    """Back to float32 (integer ids stay int64, as the network takes them)."""
    if array is None:
        return None
    if array.dtype == np.int8:
        return array.astype(np.float32) * np.float32(scale)
    if array.dtype == np.int32:
        return array.astype(np.int64)
    return array.astype(np.float32)


class LinkedSocket:
    """A connected socket whose messages pass through an emulated :class:`Link`."""

    def __init__(self, sock: socket.socket, link: Link) -> None:
        self.sock = sock
        self.link = link
        self._free_at = 0.0  # when our direction of the link is free again
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, kind: int, msg_id: int, array: np.ndarray | None = None, *, precision: str = "fp32",
             wall_ms: float = 0.0, cpu_ms: float = 0.0) -> int:
        """Send one message; returns its payload bytes. The stamp is when its last bit
        leaves the link (the link serialises messages one after another)."""
        data, scale = encode(array, precision)
        payload = b"" if data is None else data.tobytes()
        shape = () if data is None else data.shape
        if len(shape) > 4:
            raise ValueError(f"tensors of at most 4 dimensions cross the link, got {shape}")
        dims = (list(shape) + [0, 0, 0, 0])[:4]
        code = 0 if data is None else _CODES[data.dtype]
        start = max(time.monotonic(), self._free_at)
        leaves = start + self.link.wire_ms(len(payload)) / 1e3
        self._free_at = leaves
        header = HEADER.pack(MAGIC, kind, code, len(shape), msg_id, scale, leaves, *dims, wall_ms, cpu_ms)
        self.sock.sendall(header + payload)
        return len(payload)

    def receive(self, deadline: float) -> Message:
        """The next message, handed over when the link would deliver it; ``deadline`` is a
        ``time.monotonic()`` value."""
        head = self._read(HEADER.size, deadline)
        magic, kind, code, ndim, msg_id, scale, leaves, d0, d1, d2, d3, wall_ms, cpu_ms = HEADER.unpack(head)
        if magic != MAGIC or code not in DTYPES or ndim > 4:
            raise LinkClosed("the peer sent something that is not an edgenas split message")
        shape = (d0, d1, d2, d3)[:ndim]
        array = None
        if ndim:
            dtype = np.dtype(DTYPES[code])
            raw = self._read(int(np.prod(shape)) * dtype.itemsize, deadline)
            array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        arrives = leaves + self.link.rtt_ms / 2e3
        wait = arrives - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        return Message(kind, msg_id, decode(array, scale), wall_ms, cpu_ms)

    def _read(self, size: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout("no answer before the deadline")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(min(size - got, 1 << 20))
            except TimeoutError:
                raise LinkTimeout("no answer before the deadline") from None
            except OSError as exc:  # connection reset by a peer that died
                raise LinkClosed(f"the connection broke ({exc.strerror or exc})") from None
            if not chunk:
                raise LinkClosed("the peer closed the connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def accept_peer(listener: socket.socket, spec: dict) -> LinkedSocket | None:
    """The edge's connection to a worker, through the link ``spec["link"]`` describes; ``None``
    when no edge connects within ``spec["start_timeout_s"]``."""
    link = Link(**{k: v for k, v in spec["link"].items() if k != "label"})
    listener.settimeout(float(spec["start_timeout_s"]))
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        return None
    return LinkedSocket(conn, link)


__all__ = ["BYE", "ERROR", "HELLO", "PROMPT", "READINGS", "READY", "RELINK", "REPLY", "REQUEST", "STREAM", "LinkClosed", "LinkTimeout", "LinkedSocket",
           "Message", "accept_peer", "decode", "encode"]
