"""The many-device simulator: rounds, sampling, budgets, failures, stragglers, accounting.

Every method sees the same data, budgets, sampled devices and fault draws (all derived
from ``(seed, round)``). A round: sample 10-25 devices; each gets a plan (a sub-model
under its budget, or a logged budget error); devices fine-tune in parallel (Ray when
available and asked for, in-process otherwise); failed devices send nothing, stragglers'
updates arrive a round late (and are then rejected as stale); every update is checked
(:func:`nas.adapt.wire.validate`) before the cloud aggregates the accepted ones. Results
and the cloud state are written after every round, so an interrupted run resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from nas.adapt.config import SimulationConfig
from nas.adapt.costs import Cost, sample_budgets
from nas.adapt.data import DomainData, load_domain_data
from nas.adapt.decomposition import (
    Decomposition,
    ElasticDecomposition,
    ModularDecomposition,
    elastic_space,
)
from nas.adapt.device import DeviceJob, DeviceResult, run_device
from nas.adapt.methods import (
    METHOD_TYPES,
    BudgetError,
    Method,
    Plan,
    download_bytes,
    tensor_group,
)
from nas.adapt.partition import DeviceData, PartitionSpec, devices_at
from nas.adapt.wire import Update, UpdateRejected, pack, state_version, unpack, validate
from nas.config import config_to_dict
from nas.errors import EdgenasError
from nas.evaluation import accuracy_on_arrays
from search_spaces import get_space
from search_spaces.modular import NebulaSpace

log = logging.getLogger("edgenas.adapt")


def build_space(config: SimulationConfig, data: DomainData) -> NebulaSpace:
    """The modular space for the data: the preset named, sized to the data's inputs."""
    c, h, w = data.input_shape
    preset = config.cloud.preset or ("mnist1d" if h == 1 else "digits")
    space = get_space("nebula", preset=preset, in_channels=c, height=h, width=w, num_classes=data.num_classes)
    assert isinstance(space, NebulaSpace)
    return space


def build_decomposition(config: SimulationConfig, data: DomainData) -> Decomposition:
    """The configured decomposition of a cloud model sized to the data."""
    if config.decomposition == "elastic":
        return ElasticDecomposition(elastic_space(data.input_shape, data.num_classes), config.local.batch_size)
    return ModularDecomposition(build_space(config, data), config.local.batch_size)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class Simulation:
    """State shared by the methods of one run (data, budgets, pretrained cloud model)."""

    def __init__(self, config: SimulationConfig, progress: bool = True, data: DomainData | None = None) -> None:
        self.config, self.progress = config, progress
        if not config.out_dir:
            raise EdgenasError("out_dir is not set: name the folder the simulation writes to")
        self.out = Path(config.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "state").mkdir(exist_ok=True)
        d = config.data
        self.data = data or load_domain_data(d.name, config.seed, d.proxy_samples, d.device_samples, d.root)
        self.decomp = build_decomposition(config, self.data)
        self.space = self.decomp.space
        dev = config.devices
        self.budgets: list[Cost] = sample_budgets(self.decomp.cost(self.decomp.full_arch()), dev.count, dev.budget_low, dev.budget_high, config.seed)
        self.spec = PartitionSpec(dev.count, dev.classes_per_device, dev.min_samples, dev.max_samples,
                                  dev.test_samples, self.data.num_classes)
        self.full_arch = self.decomp.full_arch()
        self.pretrained = self._pretrained()
        self._steps: dict[int, list[DeviceData]] = {}
        self.cloud = self.decomp.build()
        self.local_states: dict[int, tuple[Any, dict[str, torch.Tensor]]] = {}
        self.results_path = self.out / "results.json"
        self.results = self._load_results()

    # --- set-up -------------------------------------------------------------------------
    def _pretrained(self) -> dict[str, torch.Tensor]:
        """The cloud model trained on proxy data and sharpened (cached in ``out_dir``)."""
        path = self.out / "cloud_pretrained.safetensors"
        cc = self.config.cloud
        key = json.dumps({"space": self.space.describe(), "cloud": config_to_dict(cc),
                          "data": config_to_dict(self.config.data), "seed": self.config.seed}, sort_keys=True)
        if path.is_file():
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                if (f.metadata() or {}).get("key") == key:
                    return load_file(str(path))
        torch.manual_seed(self.config.seed)
        net = self.decomp.build()
        self.decomp.pretrain(net, self.data, cc, self.config.devices.classes_per_device, self.config.seed,
                             self.progress)
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(path), metadata={"key": key})
        return state

    def _load_results(self) -> dict[str, Any]:
        fresh = {"config": config_to_dict(self.config), "dataset": self.data.name,
                 "space": self.space.describe(), "full_model_bytes": len(pack(self.pretrained)),
                 "pretrained_accuracy_device_domain": accuracy_on_arrays(self._net(self.pretrained), self.data.test_x,
                                                                         self.data.test_y),
                 "methods": {}}
        if self.results_path.is_file():
            old = json.loads(self.results_path.read_text())
            if old.get("config") != fresh["config"]:
                raise EdgenasError(f"{self.results_path} holds results of another configuration: "
                                   "choose another out_dir or delete that one")
            return old
        return fresh

    def _net(self, state: dict[str, torch.Tensor]) -> torch.nn.Module:
        return self.decomp.model(state, self.full_arch)

    def devices(self, round_: int) -> list[DeviceData]:
        step = round_ if self.config.continuous else 0
        if step not in self._steps:
            self._steps = {step: devices_at(step, self.spec, self.data.pool_y, self.data.test_y,
                                            self.config.seed, self.config.drift_share)}
        return self._steps[step]

    # --- one method ---------------------------------------------------------------------
    def run_method(self, name: str) -> list[dict[str, Any]]:
        from tqdm import tqdm

        method = METHOD_TYPES[name]()
        rounds = self.results["methods"].setdefault(name, {"rounds": []})["rounds"]
        meta = self._restore(name, len(rounds))
        for r in tqdm(range(len(rounds), self.config.rounds), desc=name, disable=not self.progress,
                      initial=len(rounds), total=self.config.rounds):
            rounds.append(self.round(method, r, meta))
            self._persist(name, meta)
            _write_json(self.results_path, self.results)
        return rounds

    def _restore(self, name: str, done: int) -> dict[str, Any]:
        self.cloud.load_state_dict(self.pretrained)
        self.local_states = {}
        meta: dict[str, Any] = {"selector_cached": [], "late": [], "cloud_versions": {}, "held_versions": {},
                                "held_classes": {}}
        path = self.out / "state" / f"{name}.json"
        if done and path.is_file():
            meta = {**meta, **json.loads(path.read_text())}
            meta["late"] = []  # stragglers' updates from before the interruption are not replayed
            self.cloud.load_state_dict(load_file(str(self.out / "state" / f"{name}.safetensors")))
            local = self.out / "state" / f"{name}.local.safetensors"
            if local.is_file():
                tensors = load_file(str(local))
                for dev, arch in meta.get("local_archs", {}).items():
                    prefix = f"{dev}::"
                    self.local_states[int(dev)] = (self.space.arch_from_json(arch), {
                        k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        meta["version"] = state_version(self.cloud.state_dict(), done)
        self.cloud_versions = meta["cloud_versions"]  # tensor group -> round it last changed
        self.held_versions = {int(d): v for d, v in meta["held_versions"].items()}
        self.held_classes = {int(d): v for d, v in meta["held_classes"].items()}
        meta["held_versions"], meta["held_classes"] = self.held_versions, self.held_classes
        return meta

    def _persist(self, name: str, meta: dict[str, Any]) -> None:
        state = self.out / "state"
        save_file({k: v.contiguous() for k, v in self.cloud.state_dict().items()}, str(state / f"{name}.safetensors"))
        if self.local_states:
            flat = {f"{d}::{k}": v.contiguous() for d, (_, w) in self.local_states.items() for k, v in w.items()}
            save_file(flat, str(state / f"{name}.local.safetensors"))
            meta["local_archs"] = {str(d): a.to_json() for d, (a, _) in self.local_states.items()}
        saved = {k: v for k, v in meta.items() if k != "late"}
        saved["held_versions"] = {str(d): v for d, v in self.held_versions.items()}
        saved["held_classes"] = {str(d): v for d, v in self.held_classes.items()}
        _write_json(state / f"{name}.json", saved)

    def round(self, method: Method, r: int, meta: dict[str, Any]) -> dict[str, Any]:
        """One round of ``method``; returns its record (figures and everything logged)."""
        cfg, dev = self.config, self.config.devices
        rng = np.random.default_rng([cfg.seed, 1000 + r])
        k = int(rng.integers(dev.per_round_min, dev.per_round_max + 1))
        sampled = sorted(rng.choice(dev.count, k, replace=False).tolist())
        draws = {d: rng.random(5) for d in sampled}
        devices = self.devices(r)
        record: dict[str, Any] = {"round": r + 1, "sampled": sampled, "budget_errors": [], "failed": [],
                                  "stragglers": [], "rejected": [], "bytes_down": 0, "bytes_up": 0}
        version = meta["version"]
        plans: dict[int, Plan] = {}
        jobs = []
        cached = set(meta["selector_cached"])
        for d in sampled:
            data = devices[d]
            x = self.data.pool_x[data.train]
            try:
                plan = method.plan(self, d, x, self.data.pool_y[data.train])
            except BudgetError as exc:
                log.warning("round %d %s: %s", r + 1, method.name, exc)
                record["budget_errors"].append(str(exc))
                continue
            plans[d] = plan
            record["bytes_down"] += download_bytes(plan, d in cached)
            cached.add(d)
            if draws[d][0] < dev.fail_prob:
                log.warning("round %d %s: device %d dropped out (no update)", r + 1, method.name, d)
                record["failed"].append(d)
                continue
            training = cfg.local if plan.train else dataclasses.replace(cfg.local, epochs=0)
            imp = tuple(map(tuple, plan.importance.tolist())) if plan.importance is not None else None
            jobs.append(DeviceJob(d, self.decomp.spec(), plan.arch.to_json(), plan.width_ratio,
                                  pack(plan.state), version, x, self.data.pool_y[data.train],
                                  self.data.test_x[data.test], self.data.test_y[data.test], training,
                                  cfg.seed * 100003 + r * 1009 + d, plan.upload, imp,
                                  self.data.num_classes if method.name == "nebula" else 0))
        meta["selector_cached"] = sorted(cached)
        results = run_jobs(jobs, cfg.parallel, cfg.workers)
        incoming: list[Update] = list(meta["late"])
        meta["late"] = []
        for res in results:
            plan = plans[res.device]
            if method.name in ("local_only", "nebula"):  # the device keeps what it trained
                self.local_states[res.device] = (plan.arch, {k: v for k, v in unpack(res.local_weights).items()
                                                             if not k.startswith("selector.")})
                if plan.versions is not None:
                    self.held_versions[res.device] = plan.versions
                    trained = set(self.held_classes.get(res.device, ()))
                    self.held_classes[res.device] = sorted(trained | set(
                        np.unique(self.data.pool_y[devices[res.device].train]).tolist()))
            if res.update is None:
                continue
            update = _inject_faults(res.update, draws[res.device], cfg, version)
            record["bytes_up"] += update.nbytes
            if draws[res.device][1] < dev.straggler_prob:
                log.warning("round %d %s: device %d missed the deadline; its update arrives next round",
                            r + 1, method.name, res.device)
                record["stragglers"].append(res.device)
                meta["late"].append(update)
                continue
            incoming.append(update)
        accepted = []
        for update in incoming:
            plan = plans.get(update.device)
            expected = {k: v.shape for k, v in (plan.state if plan else {}).items() if not k.startswith("selector.")}
            try:
                tensors = validate(update, version, expected)
            except UpdateRejected as exc:
                log.warning("round %d %s: rejected: %s", r + 1, method.name, exc)
                record["rejected"].append(str(exc))
                continue
            accepted.append((plan, tensors, update))
        before = {k: v.clone() for k, v in self.cloud.state_dict().items()}
        method.aggregate(self, accepted)
        if not all(torch.isfinite(v).all() for v in self.cloud.state_dict().values() if v.is_floating_point()):
            self.cloud.load_state_dict(before)  # defence in depth: never keep a broken cloud model
            record["rejected"].append("aggregate had non-finite values; cloud model kept")
        for key, value in self.cloud.state_dict().items():
            if not torch.equal(value, before[key]):
                self.cloud_versions[tensor_group(key)] = r + 1
        meta["version"] = state_version(self.cloud.state_dict(), r + 1)
        record["accepted"] = len(accepted)
        record["version"] = meta["version"]
        record.update(self._figures(method, results, plans, devices))
        return record

    def _figures(self, method: Method, results: list[DeviceResult], plans: dict[int, Plan],
                 devices: list[DeviceData]) -> dict[str, Any]:
        accs = []
        for res in results:
            if method.evaluate_after_aggregation:
                plan = plans[res.device]
                net = self.decomp.model(self.cloud.state_dict(), plan.arch, plan.width_ratio)
                data = devices[res.device]
                accs.append(accuracy_on_arrays(net, self.data.test_x[data.test], self.data.test_y[data.test]))
            elif method.name == "no_adaptation":
                accs.append(res.accuracy_before)
            else:
                accs.append(res.accuracy_after)
        trained = [r for r in results if r.batches]
        mods = [self.decomp.units(plans[r.device].arch) for r in results]
        return {
            "accuracy": float(np.mean(accs)) if accs else None,
            "accuracy_before_training": float(np.mean([r.accuracy_before for r in results])) if results else None,
            "accuracy_after_training": float(np.mean([r.accuracy_after for r in results])) if results else None,
            "kept_tensors_mean": float(np.mean([plans[r.device].notes.get("kept_tensors", 0.0) for r in results]))
            if results else 0.0,
            "devices_reporting": len(results),
            "peak_memory_bytes_mean": float(np.mean([r.peak_memory_bytes for r in trained])) if trained else 0.0,
            "peak_memory_bytes_max": int(max((r.peak_memory_bytes for r in trained), default=0)),
            "time_per_batch_ms_median": 1e3 * float(np.median([r.time_per_batch_s for r in trained])) if trained else 0.0,
            "modules_per_device_mean": float(np.mean(mods)) if mods else 0.0,
            "width_ratio_mean": float(np.mean([plans[r.device].width_ratio for r in results])) if results else 0.0,
            "over_budget": int(sum(plans[r.device].notes.get("over_budget", 0) for r in results)),
        }


def _inject_faults(update: Update, draw: np.ndarray, cfg: SimulationConfig, version: str) -> Update:
    """Configured faults on the way back: truncation (checksum), NaNs, an old base version."""
    f = cfg.faults
    if draw[2] < f.corrupt_prob:
        return dataclasses.replace(update, payload=update.payload[: len(update.payload) // 2])
    if draw[3] < f.nan_prob:
        tensors = unpack(update.payload)
        first = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[first] = torch.full_like(tensors[first], float("nan"))
        return Update.build(update.device, update.base_version, tensors, update.samples, update.importance)
    if draw[4] < f.stale_prob:
        return dataclasses.replace(update, base_version=f"{version}-old")
    return update


_RAY_STARTED = False


def run_jobs(jobs: list[DeviceJob], parallel: str, workers: int) -> list[DeviceResult]:
    """Run device jobs through Ray (parallel; ``auto`` uses it when installed) or in-process.

    A job that raises is logged and treated as a failed device.
    """
    global _RAY_STARTED
    use_ray = parallel == "ray" or (parallel == "auto" and workers > 1 and len(jobs) > 1 and _ray_available())
    if parallel == "ray" and not _ray_available():
        raise EdgenasError("parallel: ray needs Ray installed: pip install 'edgenas[search]' (or use sequential)")
    if not use_ray:
        out = []
        for job in jobs:
            try:
                out.append(run_device(job))
            except Exception as exc:  # a crashing device must not end the round
                log.warning("device %d crashed: %s", job.device, exc)
        return out
    import ray

    from nas.local_ray import init_ray

    if not ray.is_initialized():  # a local instance on 127.0.0.1, stopped by shutdown_ray()
        _RAY_STARTED = init_ray("local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                                configure_logging=False)
    remote = ray.remote(num_cpus=1)(run_device)
    refs = [remote.remote(job) for job in jobs]
    out = []
    for job, ref in zip(jobs, refs):
        try:
            out.append(ray.get(ref))
        except Exception as exc:
            log.warning("device %d crashed: %s", job.device, exc)
    return out


def shutdown_ray() -> None:
    """Stop the local Ray instance :func:`run_jobs` started, if any (a cluster it only
    connected to is left running)."""
    global _RAY_STARTED
    if _RAY_STARTED:
        from nas.local_ray import shutdown_ray as stop_local_ray

        stop_local_ray()
        _RAY_STARTED = False


def _ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def summarise(results: dict[str, Any], last: int = 5) -> dict[str, dict[str, Any]]:
    """Per method: accuracy in round 1 and over the last rounds, bytes, rounds to target, cost."""
    target = results["config"]["target_accuracy"]
    out = {}
    for name, data in results["methods"].items():
        rounds = [r for r in data["rounds"] if r["accuracy"] is not None]
        if not rounds:
            continue
        tail = rounds[-last:]
        reach = next((r["round"] for r in rounds if r["accuracy"] >= target), None)
        device_rounds = sum(r["devices_reporting"] + len(r["failed"]) for r in rounds) or 1
        out[name] = {
            "accuracy_round1": rounds[0]["accuracy"],
            "accuracy_final": float(np.mean([r["accuracy"] for r in tail])),
            # the sampled devices' models right after local training (FedAvg/HeteroFL: fine-tuned
            # global model; the others: the same as accuracy_final)
            "accuracy_final_after_training": float(np.mean([r.get("accuracy_after_training") or 0.0 for r in tail])),
            "modules_per_device_mean": float(np.mean([r["modules_per_device_mean"] for r in rounds])),
            "bytes_down": int(sum(r["bytes_down"] for r in rounds)),
            "bytes_up": int(sum(r["bytes_up"] for r in rounds)),
            "bytes_per_device_round": (sum(r["bytes_down"] + r["bytes_up"] for r in rounds)) / device_rounds,
            "device_rounds": device_rounds,
            "rounds_to_target": reach,
            "peak_memory_bytes_mean": float(np.mean([r["peak_memory_bytes_mean"] for r in rounds])),
            "time_per_batch_ms_median": float(np.median([r["time_per_batch_ms_median"] for r in rounds])),
            "rejected": int(sum(len(r["rejected"]) for r in rounds)),
            "failed": int(sum(len(r["failed"]) for r in rounds)),
            "budget_errors": int(sum(len(r["budget_errors"]) for r in rounds)),
        }
    return out


def simulate(config: SimulationConfig, progress: bool = True, data: DomainData | None = None) -> dict[str, Any]:
    """Run every configured method; returns (and writes to ``out_dir/results.json``) the results."""
    sim = Simulation(config, progress, data)
    try:
        for name in config.methods:
            sim.run_method(name)
    finally:
        shutdown_ray()
    sim.results["summary"] = summarise(sim.results)
    _write_json(sim.results_path, sim.results)
    return sim.results
