"""One real adaptation round of the elastic decomposition: a trained supernet and device directories.

The checkpoint is what ``edgenas train`` writes (its output directory or ``checkpoint.json``).
Each device directory holds:

- ``data.safetensors``: ``x`` as uint8 images ``(N, C, H, W)`` like the training data
  (normalised here with the checkpoint's mean and std) or float32 already normalised,
  ``y`` int64 labels, and optionally ``test_x``/``test_y`` (default: the training data);
- ``budget.json`` (optional): ``memory``, ``compute`` and ``bandwidth`` (default: the full
  supernet's cost at the device's resolution);
- ``arch.json`` (optional): the device's sub-network: an arch's JSON, an object with an
  ``arch`` key, or the ``--out`` file of ``edgenas search`` for that device (its recommended arch). Without it the
  stage-wise knapsack picks the largest sub-network within the budget.

Every device fine-tunes its slice of the supernet. Its update passes the same checks as
in the simulator, and the cloud averages accepted updates slice-wise, weighted by
samples, with classifier rows weighted by class counts. The result is a new supernet
checkpoint in ``out_dir`` that ``edgenas search``, ``eval`` and ``finetune`` read. The
input checkpoint is never written to.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from nas.adapt.aggregate import weighted_average
from nas.adapt.config import AdaptConfig
from nas.adapt.costs import Cost
from nas.adapt.decomposition import ElasticDecomposition
from nas.adapt.device import DeviceJob, LocalTraining, run_device
from nas.adapt.elastic import choose_elastic_arch
from nas.adapt.methods import BudgetError
from nas.adapt.real import device_budget, device_data
from nas.adapt.wire import UpdateRejected, pack, state_version, validate
from nas.errors import EdgenasError
from nas.training.checkpoint import save_checkpoint
from nas.training.restore import load_supernet

log = logging.getLogger("edgenas.adapt")

# checkpoint metadata that describes one file or one optimizer, not the model: not carried over
_FILE_KEYS = ("format", "version", "weights", "sha256", "saved_at", "torch", "optimizer", "optimizer_phase",
              "fingerprint")


def _inputs(x: np.ndarray, mean: list[float] | None, std: list[float] | None, space: Any, where: Path) -> np.ndarray:
    """Device images as the supernet was trained on them (normalised float32)."""
    cfg = space.config
    if x.shape[1] != cfg.in_channels or x.shape[2] != x.shape[3]:
        raise EdgenasError(f"{where}: images are {tuple(x.shape[1:])}; this supernet takes square images with "
                           f"{cfg.in_channels} channels")
    if x.shape[2] not in cfg.resolutions:
        raise EdgenasError(f"{where}: images are {x.shape[2]}x{x.shape[3]}; the supernet was trained at "
                           f"{list(cfg.resolutions)}: resize them to one of those")
    if x.dtype == np.uint8:
        if mean is None or std is None:
            raise EdgenasError(f"{where}: uint8 images, but the checkpoint records no mean/std: send normalised float32")
        m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
        return ((x.astype(np.float32) / 255.0 - m) / s).astype(np.float32)
    if x.dtype != np.float32:
        raise EdgenasError(f"{where}: x is {x.dtype}; send uint8 images or normalised float32")
    return x


def device_arch(path: Path, space: Any, decomp: ElasticDecomposition, budget: Cost, resolution: int,
                device: int) -> Any:
    """The device's sub-network: its ``arch.json`` if it has one (checked against the budget), else the knapsack's."""
    file = path / "arch.json"
    if not file.is_file():
        return choose_elastic_arch(space, budget, device, decomp.batch_size, resolution=resolution)
    try:
        data = json.loads(file.read_text())
        if isinstance(data, dict) and "recommended" in data:  # an `edgenas search --out` file as is
            if not data["recommended"]:
                raise ValueError("the search found no feasible arch")
            data = data["recommended"]
        arch = space.arch_from_json(data.get("arch", data) if isinstance(data, dict) else data)
        space.validate(arch)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EdgenasError(f"{file}: not a sub-network of this supernet ({exc})") from None
    if arch.resolution != resolution:
        arch = dataclasses.replace(arch, resolution=resolution)
    cost = decomp.cost(arch)
    if not cost.fits(budget):
        raise BudgetError(f"device {device}: {file.name} needs {cost.describe()}, over its budget ({budget.describe()})")
    return arch


def adapt_supernet_round(config: AdaptConfig) -> dict[str, Any]:
    """Run one round over ``config.device_dirs`` from the training checkpoint ``config.checkpoint``."""
    space, supernet, ckpt = load_supernet(config.checkpoint or "")
    out = Path(config.out_dir)
    if out.resolve() == ckpt.path.parent.resolve():
        raise EdgenasError(f"out_dir {out} is the checkpoint's own directory: choose another out_dir, so that the "
                           "cloud model stays as it is")
    if (out / "checkpoint.json").is_file():
        try:
            earlier = json.loads((out / "checkpoint.json").read_text()).get("adapted_from", {}).get("sha256")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            earlier = None
        if earlier != ckpt.meta.get("sha256"):  # only a rerun of this very round may replace it
            raise EdgenasError(f"out_dir {out} already holds another checkpoint: choose another out_dir or delete "
                               "that one first")
    decomp = ElasticDecomposition(space, config.local.batch_size)
    data_meta = ckpt.meta.get("data", {})
    num_classes = space.config.num_classes
    version = state_version(supernet.state_dict(), 0)
    record: dict[str, Any] = {"checkpoint": str(ckpt.path), "decomposition": "elastic", "version_before": version,
                              "devices": [], "rejected": [], "budget_errors": [], "bytes_down": 0, "bytes_up": 0}
    accepted = []
    state = supernet.state_dict()  # unchanged until every device has trained
    for i, name in enumerate(config.device_dirs):
        path = Path(name)
        data = device_data(path)
        x = _inputs(data["x"], data_meta.get("mean"), data_meta.get("std"), space, path)
        y = data["y"].astype(np.int64)
        test_x = _inputs(data["test_x"], data_meta.get("mean"), data_meta.get("std"), space, path) \
            if "test_x" in data else x
        test_y = data["test_y"].astype(np.int64) if "test_y" in data else y
        if max(y.max(initial=0), test_y.max(initial=0)) >= num_classes:  # device_data checked >= 0
            raise EdgenasError(f"{path}: labels must be in [0, {num_classes}) for this supernet")
        resolution = int(x.shape[-1])
        full = decomp.cost(dataclasses.replace(space.largest(), resolution=resolution))
        budget = device_budget(path, full)
        try:
            arch = device_arch(path, space, decomp, budget, resolution, i)
        except BudgetError as exc:
            log.warning("%s: %s", path, exc)
            record["budget_errors"].append(f"{path}: {exc}")
            continue
        sub = decomp.extract(state, arch)
        job = DeviceJob(i, decomp.spec(), arch.to_json(), 1.0, pack(sub), version, x, y, test_x, test_y,
                        LocalTraining.from_section(config.local),
                        config.seed + i, True, None, num_classes)
        record["bytes_down"] += len(job.weights)
        res = run_device(job)
        assert res.update is not None
        record["bytes_up"] += res.update.nbytes
        try:
            tensors = validate(res.update, version, decomp.shapes(arch))
        except UpdateRejected as exc:
            log.warning("%s: rejected: %s", path, exc)
            record["rejected"].append(f"{path}: {exc}")
            continue
        accepted.append((tensors, decomp.weight(None, res.update.samples, res.update.class_counts)))
        record["devices"].append({"dir": str(path), "arch": arch.to_json(), "cost": dataclasses.asdict(decomp.cost(arch)),
                                  "accuracy_before": res.accuracy_before, "accuracy_after": res.accuracy_after,
                                  "peak_memory_bytes": res.peak_memory_bytes,
                                  "time_per_batch_ms": 1e3 * res.time_per_batch_s})
    if accepted:
        supernet.load_state_dict(weighted_average(state, accepted, where=decomp.where))
    record["version_after"] = state_version(supernet.state_dict(), 1 if accepted else 0)
    meta = {k: v for k, v in ckpt.meta.items() if k not in _FILE_KEYS}
    meta["adapted_from"] = {"checkpoint": str(ckpt.path), "sha256": ckpt.meta.get("sha256"),
                            "devices": len(accepted), "version_before": version,
                            "version_after": record["version_after"]}
    record["output"] = str(save_checkpoint(out, supernet, None, meta))
    (out / "round.json").write_text(json.dumps(record, indent=1))
    return record
