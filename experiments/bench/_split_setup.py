"""The edge and cloud "devices" the split-inference benchmarks use, on this one machine.

Two pairs of profiles of this CPU, each built once into the benchmark's workspace (and
reused; an interrupted profile resumes):

* ``ofa`` pair, on OFA's ImageNet-sized MobileNetV3 space (10 classes, 128x128 inputs):
  the **edge** is TVM with its untuned default schedules, one thread (as on a device
  nobody tuned a compiler for); the **cloud** is PyTorch eager (oneDNN kernels), one
  thread. On these networks the cloud is 2-6x faster than the edge.
* ``small`` pair, on the CPU-sized space the digits supernet is trained on (32x32): here
  TVM is the faster of the two, so the **edge** is PyTorch eager and the **cloud** TVM.

Both pairs are profiled with the CPU clock (each thread's CPU time: robust on a shared
machine), one thread each. What this means for the figures: the "cloud" is the same
core as the "edge" running other code, so the gap between them is a few times, not the
10-100x of a phone against a server GPU; both processes share two cores with whatever
else runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TVM_1 = {"kind": "llvm", "num-cores": 1}
PAIRS: dict[str, dict[str, Any]] = {
    "ofa": {"space": ("mbv3", {"preset": "ofa", "num_classes": 10, "resolutions": (128,)}),
            "edge": ("ofa-edge", "tvm"), "cloud": ("ofa-cloud", "eager"),
            "plan": {"budget_minutes": 30.0, "holdout": 6, "train": 8, "max_blocks": 70, "pool_archs": 200}},
    "small": {"space": ("mbv3", {"preset": "small"}),
              "edge": ("small-edge", "eager"), "cloud": ("small-cloud", "tvm"),
              "plan": {"budget_minutes": 20.0, "holdout": 8, "train": 10}},
}
SMOKE_PLAN = {"budget_minutes": 3.0, "holdout": 3, "train": 4, "max_blocks": 10, "pool_archs": 30, "noise_repeats": 3}
"""CI size: both devices of a pair profiled eager (no TVM builds), a few measurements each."""
CHECKPOINT_STEPS = 150


def pair_space(name: str) -> Any:
    from search_spaces import get_space

    space, options = PAIRS[name]["space"]
    return get_space(space, **options)


def ensure_pair(workspace: Path, name: str, smoke: bool = False, progress: bool = True) -> tuple[str, str]:
    """Profile the pair's edge and cloud (once); returns their device names."""
    from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan
    from latency_predictors.profilers import make_profiler
    from latency_predictors.timing import TimingConfig
    from nas.workspace import Workspace

    ws = Workspace(Path(workspace))
    space = pair_space(name)
    spec = PAIRS[name]
    plan = ProfilePlan(**(SMOKE_PLAN if smoke else spec["plan"]))
    names = []
    for role in ("edge", "cloud"):
        device, backend = spec[role]
        device, backend = (device + "-smoke", "eager") if smoke else (device, backend)
        names.append(device)
        if ws.profile_path(device).is_file():  # written when a profile finishes (an interrupted one resumes)
            continue
        from latency_predictors.device_profile import DeviceProfile

        timing = TimingConfig(repeat=7 if smoke else 15, clock="cpu")
        profiler = make_profiler(TVM_1, backend=backend, timing=timing)
        described = profiler.describe()
        profile = DeviceProfile(name=device, space=space.describe(), target=described["target"],
                                reached={"kind": "local"}, backend=backend, timing=timing.to_json())
        ProfileBuilder(profile, space, profiler, ws.measurements(), ws.profiles_dir, plan=plan,
                       progress=progress).run()
    return names[0], names[1]


def measure_blocks(workspace: Path, device: str, archs: list[Any], progress: bool = True) -> int:
    """Time the blocks of ``archs`` that ``device``'s profile has not measured yet (as a
    hardware engineer profiling for the archs about to be deployed would); returns how many.
    The device's predictors look them up exactly from then on."""
    from latency_predictors.measurements import Measurement
    from latency_predictors.profilers import profiler_for_profile
    from latency_predictors.tvm_profiler import tvm_version
    from nas.workspace import Workspace
    from search_spaces import space_from_description

    ws = Workspace(Path(workspace))
    profile = ws.load_profile(device)
    space = space_from_description(profile.space)
    store = ws.measurements()
    done = {m.item for m in store.query(device, space=space.name, role="block", backend=profile.backend,
                                        schedule=profile.schedule_label)}
    todo = {b.key(): b for a in archs for b in space.blocks(a) if b.key() not in done}
    profiler = profiler_for_profile(profile) if todo else None
    for i, block in enumerate(todo.values()):
        timing = profiler.measure(space.build_block(block), block.in_shape)
        store.add(Measurement(device=device, space=space.name, role="block", item=block.key(),
                              backend=profile.backend, schedule=profile.schedule_label, target=profile.target,
                              tvm_version=tvm_version() if profile.backend == "tvm" else "n/a",
                              input_shape=tuple(block.in_shape), number=timing.number, repeat=timing.repeat,
                              median_ms=timing.median_ms, spread_ms=timing.spread_ms, results_ms=timing.results_ms))
        if progress:
            print(f"{device}: block {i + 1}/{len(todo)} of the benchmark's archs measured", flush=True)
    return len(todo)


def describe_pair(workspace: Path, edge: str, cloud: str) -> str:
    """``edge NAME (tvm, 1 thread), cloud NAME (eager, 1 thread), one machine``."""
    from nas.workspace import Workspace

    ws = Workspace(Path(workspace))
    parts = []
    for role, name in (("edge", edge), ("cloud", cloud)):
        profile = ws.load_profile(name)
        threads = profile.target.get("num-cores", 1) if isinstance(profile.target, dict) else 1
        parts.append(f"{role} {name} ({profile.backend}, {threads} thread)")
    return ", ".join(parts) + ", both on this machine"


def ensure_checkpoint(workspace: Path, smoke: bool = False) -> Path:
    """A supernet of the ``small`` space trained on digits as the quickstart trains it (once)."""
    from nas.config import load_config
    from nas.quickstart import QUICKSTART_CONFIG
    from nas.training import train
    from nas.training.config import TrainConfig

    out = Path(workspace) / "runs" / ("digits-smoke" if smoke else "digits")
    raw = {**QUICKSTART_CONFIG, "train": {**QUICKSTART_CONFIG["train"], "steps": 6 if smoke else CHECKPOINT_STEPS}}
    if smoke:
        raw["data"] = {**raw["data"], "limit": 300, "calibration_size": 64}
    train(load_config(TrainConfig, raw), out, progress=False)
    return out
