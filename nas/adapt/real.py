"""One real adaptation round: a cloud checkpoint and device data directories on disk.

Which decomposition runs follows from the checkpoint: a supernet training checkpoint
(``edgenas train``'s output directory or its ``checkpoint.json``) runs the elastic round
of :mod:`nas.adapt.real_elastic`; a single ``.safetensors`` file runs the modular one here.

The modular checkpoint is a safetensors file of a nebula cloud model (what a simulation writes
to ``out_dir/state/nebula.safetensors`` or ``cloud_pretrained.safetensors``). Each device
directory holds ``data.safetensors`` with ``x`` (float32 ``(N, C, H, W)``), ``y`` (int64)
and optionally ``test_x``/``test_y``, and optionally ``budget.json`` with ``memory``,
``compute`` and ``bandwidth`` (default: the full model's cost). Every device derives its
sub-model with the knapsack, fine-tunes, and its update goes through the same checks as
in the simulator; the aggregated model is written to ``out_dir/cloud_adapted.safetensors``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file, save_file

from nas.adapt.aggregate import importance_weight, weighted_average
from nas.adapt.cloud import module_importance
from nas.adapt.config import AdaptConfig
from nas.adapt.costs import Cost, CostModel
from nas.adapt.decomposition import ModularDecomposition
from nas.adapt.device import DeviceJob, LocalTraining, run_device
from nas.adapt.methods import BudgetError, choose_modules
from nas.adapt.wire import UpdateRejected, pack, state_version, validate
from nas.errors import EdgenasError
from search_spaces import get_space
from search_spaces.modular import ModularNet

log = logging.getLogger("edgenas.adapt")


def device_data(path: Path) -> dict[str, np.ndarray]:
    """A device directory's ``data.safetensors`` as numpy arrays (``x``, ``y``, optional ``test_x``/``test_y``)."""
    file = path / "data.safetensors"
    if not file.is_file():
        raise EdgenasError(f"device directory {path} has no data.safetensors (tensors x and y)")
    try:
        tensors = {k: v.numpy() for k, v in load_file(str(file)).items()}
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise EdgenasError(f"{file} is not a readable safetensors file ({exc})") from None
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


def is_training_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a supernet training checkpoint (not a single nebula ``.safetensors``)."""
    from nas.training.checkpoint import find_checkpoint

    if path.is_dir() or path.suffix == ".json":
        return True
    meta = find_checkpoint(path) if path.suffix == ".safetensors" else None
    if meta is None:
        return False
    try:  # a nebula file that merely sits beside a training checkpoint is not that checkpoint
        return json.loads(meta.read_text()).get("weights") == path.name
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return True  # read_checkpoint names the problem


def adapt_round(config: AdaptConfig) -> dict[str, Any]:
    """Run one round over ``config.device_dirs`` from ``config.checkpoint``; returns the record."""
    ckpt = Path(config.checkpoint or "")
    if not ckpt.exists():
        raise EdgenasError(f"checkpoint {ckpt} does not exist: point it at an `edgenas train` output directory "
                           "or a nebula cloud .safetensors file")
    if is_training_checkpoint(ckpt):
        from nas.adapt.real_elastic import adapt_supernet_round

        return adapt_supernet_round(config)
    try:
        state = load_file(str(ckpt))
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise EdgenasError(f"checkpoint {ckpt} is not a readable safetensors file ({exc})") from None
    if "head.2.weight" not in state:
        raise EdgenasError(f"checkpoint {ckpt} is not a nebula cloud model (no head.2.weight)")
    devices = [(Path(d), device_data(Path(d))) for d in config.device_dirs]
    c, h, w = devices[0][1]["x"].shape[1:]
    preset = config.cloud.preset or ("mnist1d" if h == 1 else "digits")
    space = get_space("nebula", preset=preset, in_channels=int(c), height=int(h), width=int(w),
                      num_classes=int(state["head.2.weight"].shape[0]))
    cloud = ModularNet(space.config)
    try:
        cloud.load_state_dict(state)
    except RuntimeError as exc:
        raise EdgenasError(f"checkpoint {ckpt} does not match preset {preset!r}: {str(exc)[:200]}") from None
    costs = CostModel(space.config, config.local.batch_size)
    version = state_version(cloud.state_dict(), 0)
    record: dict[str, Any] = {"checkpoint": str(ckpt), "version_before": version, "devices": [],
                              "rejected": [], "budget_errors": [], "bytes_down": 0, "bytes_up": 0}
    accepted = []
    for i, (path, data) in enumerate(devices):
        budget = device_budget(path, costs.full())
        x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
        importance = module_importance(cloud, x)
        try:
            arch = choose_modules(importance, budget, costs, config.cloud.min_importance, i)
        except BudgetError as exc:
            log.warning("%s: %s", path, exc)
            record["budget_errors"].append(f"{path}: {exc}")
            continue
        sub = cloud.extract(arch).state_dict()
        job = DeviceJob(i, ModularDecomposition(space, config.local.batch_size).spec(), arch.to_json(), 1.0,
                        pack(sub), version, x, y,
                        data.get("test_x", x).astype(np.float32), data.get("test_y", y).astype(np.int64),
                        LocalTraining.from_section(config.local),
                        config.seed + i, True, tuple(map(tuple, importance.tolist())), space.config.num_classes)
        record["bytes_down"] += len(job.weights)
        res = run_device(job)
        assert res.update is not None
        record["bytes_up"] += res.update.nbytes
        try:
            tensors = validate(res.update, version, {k: v.shape for k, v in sub.items() if not k.startswith("selector.")})
        except UpdateRejected as exc:
            log.warning("%s: rejected: %s", path, exc)
            record["rejected"].append(f"{path}: {exc}")
            continue
        accepted.append((tensors, importance_weight(importance.tolist(), res.update.samples,
                                                    res.update.class_counts)))
        record["devices"].append({"dir": str(path), "arch": arch.to_json(), "accuracy_before": res.accuracy_before,
                                  "accuracy_after": res.accuracy_after, "peak_memory_bytes": res.peak_memory_bytes,
                                  "time_per_batch_ms": 1e3 * res.time_per_batch_s})
    if accepted:
        cloud.load_state_dict(weighted_average(cloud.state_dict(), accepted))
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in cloud.state_dict().items()}, str(out / "cloud_adapted.safetensors"))
    record["version_after"] = state_version(cloud.state_dict(), 1)
    record["output"] = str(out / "cloud_adapted.safetensors")
    (out / "round.json").write_text(json.dumps(record, indent=1))
    return record
