"""What travels between devices and the cloud: safetensors payloads with checksums.

An update names the cloud-model version it was derived from and carries the sha256 of
its payload. The cloud accepts it only if the version is current, the checksum matches,
the payload parses as safetensors (never pickle), every tensor is one the device was sent
with the same shape, and every value is finite. A rejection raises
:class:`UpdateRejected` with the reason; the caller logs it and goes on with the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save


class UpdateRejected(ValueError):
    """An update the cloud refuses (stale version, bad checksum, corrupt, wrong tensors, NaN)."""


def pack(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """Serialise tensors with safetensors: these bytes are what is counted as sent."""
    return st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})


def unpack(payload: bytes) -> dict[str, torch.Tensor]:
    return st_load(payload)


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def state_version(tensors: Mapping[str, torch.Tensor], round_: int) -> str:
    """A cloud model's version: its round and a hash of its weights."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return f"r{round_}-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class Update:
    """A device's trained tensors for the cloud, with what the cloud needs to check them."""

    device: int
    base_version: str
    payload: bytes
    checksum: str
    samples: int
    importance: tuple[tuple[float, ...], ...] | None = field(default=None)
    class_counts: tuple[int, ...] | None = field(default=None)

    @classmethod
    def build(cls, device: int, base_version: str, tensors: Mapping[str, torch.Tensor], samples: int,
              importance: tuple[tuple[float, ...], ...] | None = None,
              class_counts: tuple[int, ...] | None = None) -> Update:
        payload = pack(tensors)
        return cls(device, base_version, payload, sha256(payload), samples, importance, class_counts)

    @property
    def nbytes(self) -> int:
        """Bytes on the wire: the payload plus the importance vector (float32) and the class
        histogram (int32) when sent."""
        extra = 4 * sum(len(r) for r in self.importance) if self.importance else 0
        extra += 4 * len(self.class_counts) if self.class_counts else 0
        return len(self.payload) + extra


def validate(update: Update, version: str, expected: Mapping[str, torch.Size]) -> dict[str, torch.Tensor]:
    """The update's tensors if the cloud can take them; raises :class:`UpdateRejected`."""
    if update.base_version != version:
        raise UpdateRejected(f"device {update.device}: update is for cloud version {update.base_version}, "
                             f"the cloud is at {version}")
    if sha256(update.payload) != update.checksum:
        raise UpdateRejected(f"device {update.device}: sha256 mismatch (corrupt or truncated payload, "
                             f"{len(update.payload)} bytes)")
    try:
        tensors = unpack(update.payload)
    except Exception as exc:  # safetensors raises its own error types for malformed input
        raise UpdateRejected(f"device {update.device}: payload is not valid safetensors ({exc})") from None
    unknown = sorted(set(tensors) - set(expected))
    if unknown or not tensors:
        raise UpdateRejected(f"device {update.device}: tensors the device was not sent: {unknown[:3]}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name]:
            raise UpdateRejected(f"device {update.device}: {name} has shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(expected[name])}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UpdateRejected(f"device {update.device}: non-finite values in {name}")
    if update.samples < 1:
        raise UpdateRejected(f"device {update.device}: update claims {update.samples} samples")
    if update.class_counts is not None and (min(update.class_counts, default=0) < 0
                                            or sum(update.class_counts) != update.samples):
        raise UpdateRejected(f"device {update.device}: class histogram does not add up to {update.samples} samples")
    return tensors
