"""One real adaptation round: a cloud checkpoint and device data directories on disk.

The checkpoint decides the decomposition (:class:`~nas.adapt.decomposition.Decomposition`);
everything else is one loop, the same for both:

- a supernet training checkpoint (``edgenas train``'s output directory or its
  ``checkpoint.json``) is the **elastic** decomposition: devices get sub-networks of the
  supernet, and the result is a new training checkpoint in ``out_dir`` that ``edgenas
  search``, ``eval`` and ``finetune`` read;
- a nebula cloud model (a ``.safetensors`` file, as a simulation writes to
  ``out_dir/state/nebula.safetensors``) is the **modular** decomposition: devices get the
  modules their data routes to, and the result is ``out_dir/cloud_adapted.safetensors``.

Each device directory holds ``data.safetensors`` (``x`` as ``(N, C, H, W)``: float32, or for
a supernet uint8 images like the training data, normalised with the checkpoint's mean and
std; ``y`` int64 labels; optionally ``test_x``/``test_y``), optionally ``budget.json``
(``memory``, ``compute``, ``bandwidth``; default: the full model's cost) and, for a
supernet, optionally ``arch.json`` (an arch, or the ``--out`` file of ``edgenas search``:
its recommended arch). Every device derives its sub-model under its budget (the
knapsack), fine-tunes it, and its update passes the same checks as in the simulator; the
cloud averages the accepted updates slice-wise. ``out_dir/round.json`` records every
device. The input checkpoint is never written to, and ``out_dir`` never replaces the
output of another checkpoint's round.

Example::

    from nas.adapt import RoundConfig, adapt_round

    record = adapt_round(RoundConfig(checkpoint="runs/digits", device_dirs=("devices/a", "devices/b"),
                                     out_dir="runs/digits-adapted"))
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from nas.adapt.aggregate import weighted_average
from nas.adapt.config import RoundConfig
from nas.adapt.costs import Cost
from nas.adapt.decomposition import Decomposition, ElasticDecomposition, ModularDecomposition
from nas.adapt.device import FROZEN_PREFIX, DeviceJob, run_device
from nas.adapt.methods import BudgetError
from nas.adapt.wire import UpdateRejected, pack, state_version, validate
from nas.errors import EdgenasError

log = logging.getLogger("edgenas.adapt")

# checkpoint metadata that describes one file or one optimizer, not the model: not carried over
_FILE_KEYS = ("format", "version", "weights", "sha256", "saved_at", "torch", "optimizer", "optimizer_phase",
              "fingerprint")


@dataclass
class CloudModel:
    """The cloud model a round starts from: its decomposition, weights and where they came from."""

    decomp: Decomposition
    net: torch.nn.Module
    source: Path
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)  # a training checkpoint's metadata

    @property
    def elastic(self) -> bool:
        return isinstance(self.decomp, ElasticDecomposition)

    @property
    def num_classes(self) -> int:
        return int(self.decomp.space.config.num_classes)


# --- device directories -------------------------------------------------------------------
def device_data(path: Path) -> dict[str, np.ndarray]:
    """A device directory's ``data.safetensors`` as numpy arrays (``x``, ``y``, optional ``test_x``/``test_y``)."""
    file = path / "data.safetensors"
    if not file.is_file():
        raise EdgenasError(f"device directory {path} has no data.safetensors (tensors x and y)")
    try:
        tensors = {k: v.numpy() for k, v in load_file(str(file)).items()}
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise EdgenasError(f"{file} is not a readable safetensors file ({str(exc)[:120]})") from None
    if "x" not in tensors or "y" not in tensors or tensors["x"].ndim != 4 or len(tensors["x"]) != len(tensors["y"]):
        raise EdgenasError(f"{file}: needs x as (N, C, H, W) and y as N int64 labels")
    if len(tensors["y"]) < 2:
        raise EdgenasError(f"{file}: needs at least 2 training samples (batch norm)")
    if ("test_x" in tensors) != ("test_y" in tensors):
        raise EdgenasError(f"{file}: has one of test_x and test_y; give both, or neither to test on x and y")
    if "test_x" in tensors and (tensors["test_x"].ndim != 4 or len(tensors["test_x"]) != len(tensors["test_y"])
                                or tensors["test_x"].shape[1:] != tensors["x"].shape[1:]):
        raise EdgenasError(f"{file}: test_x must be (M, C, H, W) like x, with M labels in test_y")
    for key in ("y", "test_y"):
        if key in tensors and (tensors[key].ndim != 1 or tensors[key].min(initial=0) < 0):
            raise EdgenasError(f"{file}: {key} must hold non-negative integer class labels")
    return tensors


def device_budget(path: Path, default: Cost) -> Cost:
    """The device's ``budget.json`` (``memory``, ``compute``, ``bandwidth``), else ``default``."""
    file = path / "budget.json"
    if not file.is_file():
        return default
    try:
        return Cost(**{k: float(v) for k, v in json.loads(file.read_text()).items()})
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        raise EdgenasError(f"{file}: needs memory, compute and bandwidth numbers ({exc})") from None


def device_inputs(cloud: CloudModel, data: dict[str, np.ndarray], path: Path
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and test arrays as the cloud model takes them (labels checked against its classes)."""
    x = _inputs(cloud, data["x"], path)
    y = data["y"].astype(np.int64)
    test_x = _inputs(cloud, data["test_x"], path) if "test_x" in data else x
    test_y = data["test_y"].astype(np.int64) if "test_y" in data else y
    if max(y.max(initial=0), test_y.max(initial=0)) >= cloud.num_classes:  # device_data checked >= 0
        raise EdgenasError(f"{path}: labels must be in [0, {cloud.num_classes}) for this cloud model")
    return x, y, test_x, test_y


def _inputs(cloud: CloudModel, x: np.ndarray, where: Path) -> np.ndarray:
    if not cloud.elastic:
        cfg = cloud.decomp.space.config
        if tuple(x.shape[1:]) != (cfg.in_channels, cfg.height, cfg.width):
            raise EdgenasError(f"{where}: inputs are {tuple(x.shape[1:])}; this cloud model takes "
                               f"{(cfg.in_channels, cfg.height, cfg.width)}")
        return x.astype(np.float32)
    cfg = cloud.decomp.space.config
    if x.shape[1] != cfg.in_channels or x.shape[2] != x.shape[3]:
        raise EdgenasError(f"{where}: images are {tuple(x.shape[1:])}; this supernet takes square images with "
                           f"{cfg.in_channels} channels")
    if x.shape[2] not in cfg.resolutions:
        raise EdgenasError(f"{where}: images are {x.shape[2]}x{x.shape[3]}; the supernet was trained at "
                           f"{list(cfg.resolutions)}: resize them to one of those")
    if x.dtype == np.uint8:
        data = cloud.meta.get("data", {})
        mean, std = data.get("mean"), data.get("std")
        if mean is None or std is None:
            raise EdgenasError(f"{where}: uint8 images, but the checkpoint records no mean/std: send normalised float32")
        m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
        return ((x.astype(np.float32) / 255.0 - m) / s).astype(np.float32)
    if x.dtype != np.float32:
        raise EdgenasError(f"{where}: x is {x.dtype}; send uint8 images or normalised float32")
    return x


def device_plan(cloud: CloudModel, path: Path, x: np.ndarray, budget: Cost, device: int,
                min_importance: float) -> tuple[Any, np.ndarray | None]:
    """The device's sub-model and its module importance: its ``arch.json`` (a supernet only;
    checked against the budget), else the decomposition's knapsack under ``budget``."""
    file = path / "arch.json"
    if not file.is_file():
        return cloud.decomp.choose(cloud.net, x, budget, device, min_importance)
    if not cloud.elastic:
        raise EdgenasError(f"{file}: a nebula cloud model picks modules from the device's data; remove arch.json")
    space = cloud.decomp.space
    try:
        data = json.loads(file.read_text())
        if isinstance(data, dict) and "recommended" in data:  # an `edgenas search --out` file as is
            if not data["recommended"]:
                raise ValueError("the search found no feasible arch")
            data = data["recommended"]
        arch = space.arch_from_json(data.get("arch", data) if isinstance(data, dict) else data)
        space.validate(arch)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EdgenasError(f"{file}: not a sub-network of this supernet ({exc})") from None
    resolution = int(x.shape[-1])
    if arch.resolution != resolution:
        arch = dataclasses.replace(arch, resolution=resolution)
    cost = cloud.decomp.cost(arch)
    if not cost.fits(budget):
        raise BudgetError(f"device {device}: {file.name} needs {cost.describe()}, over its budget ({budget.describe()})")
    return arch, None


def full_cost(cloud: CloudModel, x: np.ndarray) -> Cost:
    """The whole cloud model's cost for this device's inputs (the default budget)."""
    arch = cloud.decomp.full_arch()
    if cloud.elastic:
        arch = dataclasses.replace(arch, resolution=int(x.shape[-1]))
    return cloud.decomp.cost(arch)


# --- the cloud model ----------------------------------------------------------------------
def is_training_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a supernet training checkpoint (not a single nebula ``.safetensors``)."""
    from nas.training import find_checkpoint

    if path.is_dir() or path.suffix == ".json":
        return True
    meta = find_checkpoint(path) if path.suffix == ".safetensors" else None
    if meta is None:
        return False
    try:  # a nebula file that merely sits beside a training checkpoint is not that checkpoint
        return json.loads(meta.read_text()).get("weights") == path.name
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return True  # read_checkpoint names the problem


def load_cloud(config: RoundConfig, first: dict[str, np.ndarray]) -> CloudModel:
    """The cloud model of ``config.checkpoint`` (``first``: one device's data, which sizes a
    nebula model's inputs)."""
    path = Path(config.checkpoint)
    if not path.exists():
        raise EdgenasError(f"checkpoint {path} does not exist: point it at an `edgenas train` output directory "
                           "or a nebula cloud .safetensors file")
    if is_training_checkpoint(path):
        from nas.training import load_supernet

        space, supernet, ckpt = load_supernet(path)
        return CloudModel(ElasticDecomposition(space, config.local.batch_size), supernet, ckpt.path,
                          str(ckpt.meta.get("sha256")), dict(ckpt.meta))
    from nas.training.checkpoint import sha256_file
    from search_spaces import get_space
    from search_spaces.modular import ModularNet

    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise EdgenasError(f"checkpoint {path} is not a readable safetensors file ({str(exc)[:120]})") from None
    if "head.2.weight" not in state:
        raise EdgenasError(f"checkpoint {path} is not a nebula cloud model (no head.2.weight)")
    c, h, w = first["x"].shape[1:]
    preset = config.preset or ("mnist1d" if h == 1 else "digits")
    space = get_space("nebula", preset=preset, in_channels=int(c), height=int(h), width=int(w),
                      num_classes=int(state["head.2.weight"].shape[0]))
    net = ModularNet(space.config)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise EdgenasError(f"checkpoint {path} does not match preset {preset!r}: {str(exc)[:200]}") from None
    return CloudModel(ModularDecomposition(space, config.local.batch_size), net, path, sha256_file(path))


def check_out_dir(out: Path, cloud: CloudModel) -> None:
    """Never write into the checkpoint's own folder, nor over another checkpoint's round."""
    if out.resolve() == cloud.source.parent.resolve():
        raise EdgenasError(f"out_dir {out} is the checkpoint's own directory: choose another out_dir, so that the "
                           "cloud model stays as it is")
    earlier = None
    for name in ("round.json", "checkpoint.json"):
        file = out / name
        if file.is_file():
            try:
                data = json.loads(file.read_text())
                earlier = data.get("source_sha256") or data.get("adapted_from", {}).get("sha256")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                earlier = None
            if earlier != cloud.sha256:  # only a rerun of this very round may replace it
                raise EdgenasError(f"out_dir {out} already holds another checkpoint or round: choose another "
                                   "out_dir or delete that one first")


def save_cloud(cloud: CloudModel, out: Path, record: dict[str, Any]) -> Path:
    """Write the adapted cloud model: a training checkpoint (elastic) or a safetensors file."""
    if cloud.elastic:
        from nas.training import save_checkpoint

        meta = {k: v for k, v in cloud.meta.items() if k not in _FILE_KEYS}
        meta["adapted_from"] = {"checkpoint": str(cloud.source), "sha256": cloud.sha256,
                                "devices": len(record["devices"]), "version_before": record["version_before"],
                                "version_after": record["version_after"]}
        return Path(save_checkpoint(out, cloud.net, None, meta))
    path = out / "cloud_adapted.safetensors"
    save_file({k: v.contiguous() for k, v in cloud.net.state_dict().items()}, str(path))
    return path


# --- the round ----------------------------------------------------------------------------
def adapt_round(config: RoundConfig) -> dict[str, Any]:
    """Run one round over ``config.device_dirs`` from ``config.checkpoint``; returns the record
    (also written to ``out_dir/round.json``)."""
    if not config.out_dir:
        raise EdgenasError("out_dir is not set: name the folder the adapted cloud model goes to")
    devices = [(Path(d), device_data(Path(d))) for d in config.device_dirs]
    cloud = load_cloud(config, devices[0][1])
    out = Path(config.out_dir)
    check_out_dir(out, cloud)
    decomp = cloud.decomp
    state = cloud.net.state_dict()  # unchanged until every device has trained
    version = state_version(state, 0)
    record: dict[str, Any] = {"checkpoint": str(cloud.source), "source_sha256": cloud.sha256,
                              "decomposition": decomp.name, "version_before": version, "devices": [],
                              "rejected": [], "budget_errors": [], "bytes_down": 0, "bytes_up": 0}
    accepted = []
    for i, (path, data) in enumerate(devices):
        x, y, test_x, test_y = device_inputs(cloud, data, path)
        budget = device_budget(path, full_cost(cloud, x))
        try:
            arch, importance = device_plan(cloud, path, x, budget, i, config.min_importance)
        except BudgetError as exc:
            log.warning("%s: %s", path, exc)
            record["budget_errors"].append(f"{path}: {exc}")
            continue
        sub = decomp.extract(state, arch)
        imp = tuple(map(tuple, importance.tolist())) if importance is not None else None
        job = DeviceJob(i, decomp.spec(), arch.to_json(), 1.0, pack(sub), version, x, y, test_x, test_y,
                        config.local, config.seed + i, True, imp, cloud.num_classes)
        record["bytes_down"] += len(job.weights)
        res = run_device(job)
        assert res.update is not None
        record["bytes_up"] += res.update.nbytes
        try:
            tensors = validate(res.update, version,
                               {k: v.shape for k, v in sub.items() if not k.startswith(FROZEN_PREFIX)})
        except UpdateRejected as exc:
            log.warning("%s: rejected: %s", path, exc)
            record["rejected"].append(f"{path}: {exc}")
            continue
        accepted.append((tensors, decomp.weight(importance, res.update.samples, res.update.class_counts)))
        record["devices"].append({"dir": str(path), "arch": arch.to_json(), "cost": dataclasses.asdict(decomp.cost(arch)),
                                  "accuracy_before": res.accuracy_before, "accuracy_after": res.accuracy_after,
                                  "peak_memory_bytes": res.peak_memory_bytes,
                                  "time_per_batch_ms": 1e3 * res.time_per_batch_s})
        log.info("%s: %s, accuracy %.1f %% -> %.1f %%", path, decomp.name, res.accuracy_before, res.accuracy_after)
    if accepted:
        cloud.net.load_state_dict(weighted_average(state, accepted, where=decomp.where))
    record["version_after"] = state_version(cloud.net.state_dict(), 1 if accepted else 0)
    out.mkdir(parents=True, exist_ok=True)
    record["output"] = str(save_cloud(cloud, out, record))
    (out / "round.json").write_text(json.dumps(record, indent=1))
    return record


__all__ = ["CloudModel", "adapt_round", "device_budget", "device_data", "is_training_checkpoint", "load_cloud"]
