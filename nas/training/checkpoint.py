"""Supernet checkpoints: safetensors for tensors, JSON for everything else; never pickle.

A checkpoint directory holds ``checkpoint.json`` (the commit point) and the
``step-NNNNNNNN.safetensors`` file it names. Tensors: the model state (``model/NAME``),
the optimizer state flattened (``optimizer/PARAM/KEY``) and the RNG states as uint8
tensors (``rng/...``). The JSON holds the space description, the config, step, phase,
data description, seed, the optimizer's hyper-parameters and the sha256 of the
safetensors file. Both files are written to a temporary name and renamed, the JSON last,
so a kill at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from nas.errors import EdgenasError

FORMAT = "edgenas-supernet-checkpoint"
VERSION = 1
META_NAME = "checkpoint.json"


@dataclass
class Checkpoint:
    """A verified checkpoint: its metadata and tensors."""

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def model_state(self) -> dict[str, torch.Tensor]:
        """The model's state dict, tied aliases included (they name the same tensor)."""
        state = {k[len("model/") :]: v for k, v in self.tensors.items() if k.startswith("model/")}
        for alias, name in dict(self.meta.get("tied") or {}).items():
            if name in state:
                state[alias] = state[name]
        return state


def untied_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``model``'s state dict without tied aliases, and ``{alias: name}`` of those left out."""
    state: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    seen: dict[tuple[int, tuple[int, ...], tuple[int, ...], int], str] = {}
    for name, tensor in model.state_dict(keep_vars=False).items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.storage_offset())
        if tensor.numel() and key in seen:
            tied[name] = seen[key]
            continue
        seen[key] = name
        state[name] = tensor
    return state, tied


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(tmp_path)`` then rename over ``path`` (fsynced)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The optimizer state as flat tensors plus its JSON-able rest (hyper-parameters, scalars)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, ckpt: Checkpoint) -> None:
    """Load the optimizer state saved by :func:`optimizer_tensors` into ``optimizer``."""
    saved = ckpt.meta["optimizer"]
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in ckpt.tensors.items():
        if name.startswith("optimizer/"):
            _, index, key = name.split("/", 2)
            state.setdefault(int(index), {})[key] = tensor
    for index, entries in saved["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise EdgenasError(f"{ckpt.path}: the optimizer state does not fit this model ({exc})") from None


def rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"rng/torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i in range(torch.cuda.device_count()):
            tensors[f"rng/cuda/{i}"] = torch.cuda.get_rng_state(i)
    return tensors


def restore_rng(ckpt: Checkpoint) -> None:
    torch.set_rng_state(ckpt.tensors["rng/torch_cpu"])
    for name, tensor in ckpt.tensors.items():
        if name.startswith("rng/cuda/") and torch.cuda.is_available():
            index = int(name.rsplit("/", 1)[1])
            if index < torch.cuda.device_count():
                torch.cuda.set_rng_state(tensor, index)


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    meta: dict[str, Any],
    keep: int = 1,
) -> Path:
    """Write a checkpoint of ``model`` (and ``optimizer``) at ``meta["step"]``; return the JSON path.

    Older weight files beyond the ``keep`` most recent are deleted after the JSON is committed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    step = int(meta["step"])
    state, tied = untied_state(model)
    tensors = {f"model/{k}": v.detach().contiguous().cpu() for k, v in state.items()}
    meta = dict(meta)
    if tied:
        meta["tied"] = tied
    if optimizer is not None:
        opt_tensors, meta["optimizer"] = optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
    tensors.update(rng_tensors())
    weights = directory / f"step-{step:08d}.safetensors"
    _atomic_write(weights, lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT}))
    meta.update(
        format=FORMAT,
        version=VERSION,
        weights=weights.name,
        sha256=sha256_file(weights),
        saved_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        torch=torch.__version__,
    )
    meta_path = directory / META_NAME
    _atomic_write(meta_path, lambda tmp: tmp.write_text(json.dumps(meta, indent=1, sort_keys=True)))
    old = sorted(directory.glob("step-*.safetensors"))
    for stale in [p for p in old if p.name != weights.name][: max(0, len(old) - keep)]:
        stale.unlink(missing_ok=True)
    return meta_path


def resume_matching(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    identity: dict[str, Any], what: str = "fine-tune") -> int:
    """Restore ``model``, ``optimizer`` and the RNGs from the checkpoint in ``directory`` and
    return its step (0 when there is none). A checkpoint whose metadata differs from
    ``identity`` in any of its keys belongs to another run: refused in one line."""
    if find_checkpoint(directory) is None:
        return 0
    ckpt = read_checkpoint(directory)
    if {k: ckpt.meta.get(k) for k in identity} != identity:
        raise EdgenasError(f"{directory} holds a {what} of another arch, config or supernet; use another output "
                           "directory or delete it")
    model.load_state_dict(ckpt.model_state())
    restore_optimizer(optimizer, ckpt)
    restore_rng(ckpt)
    return ckpt.step


def find_checkpoint(path: str | Path) -> Path | None:
    """The ``checkpoint.json`` of a directory, a JSON path, or a weights file's directory."""
    path = Path(path)
    if path.is_dir():
        candidate = path / META_NAME
        return candidate if candidate.exists() else None
    if path.suffix == ".safetensors":
        candidate = path.parent / META_NAME
        return candidate if candidate.exists() else None
    return path if path.exists() else None


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The metadata (``checkpoint.json``) of the checkpoint at ``path``, without reading or
    verifying its weights (:func:`read_checkpoint` does both)."""
    return _read_meta(path)[1]


def _read_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Where the checkpoint's metadata lies and what it says (format checked; one-line errors)."""
    meta_path = find_checkpoint(path)
    if meta_path is None:
        raise EdgenasError(f"no checkpoint at {path}: give a training output directory or its {META_NAME}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgenasError(f"{meta_path} is corrupt or truncated ({exc.__class__.__name__}): restore it or retrain") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise EdgenasError(f"{meta_path} is not an edgenas supernet checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    return meta_path, meta


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint (sha256 first, then safetensors); one-line errors."""
    meta_path, meta = _read_meta(path)
    if meta.get("version") != VERSION:
        raise EdgenasError(f"{meta_path} has checkpoint version {meta.get('version')}; this edgenas reads version {VERSION}")
    weights = meta_path.parent / str(meta.get("weights", ""))
    if not weights.is_file():
        raise EdgenasError(f"{meta_path} names {weights.name}, which is missing: restore it or retrain")
    digest = sha256_file(weights)
    if digest != meta.get("sha256"):
        raise EdgenasError(
            f"{weights} does not match its sha256 in {meta_path.name} (corrupt, truncated or replaced): "
            "restore the file or delete the directory to retrain"
        )
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise EdgenasError(f"{weights} is not a readable safetensors file ({exc})") from None
    return Checkpoint(meta_path, meta, tensors)


def load_model_state(model: nn.Module, ckpt: Checkpoint) -> None:
    """Copy the checkpoint's weights into ``model``, after checking every name and shape."""
    state = ckpt.model_state()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        first = (missing and f"missing {missing[0]}") or (extra and f"unexpected {extra[0]}") or (
            f"{wrong[0]} has shape {got[wrong[0]]}, the model {expected[wrong[0]]}"
        )
        raise EdgenasError(f"{ckpt.path}: weights are of another model ({first}); use a checkpoint of this space and preset")
    model.load_state_dict(state)
