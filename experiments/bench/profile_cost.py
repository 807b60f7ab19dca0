"""What profiling costs: where compile time goes, and measurements until the profile is accurate.

**Breakdown** (``--part breakdown``, about 3 minutes on 2 cores): one random whole network
and its blocks of the small ``mbv3`` preset, compiled through TVM for this CPU phase by
phase: ``torch.export``, the Relax import (mostly torch's decompositions), TVM's Relax
pipeline, kernel lowering and LLVM IR (``kernel_build``), linking, loading (LLVM's machine
code generation happens here, lazily) and timing. Four ways: the network compiled cold
(every kernel new: what ``tvm.compile`` does), each block compiled cold, the blocks in turn
with one kernel cache (:mod:`latency_predictors.kernel_cache`; later blocks reuse earlier
ones' kernels), and the network after its blocks with that cache, which reuses the kernels
the blocks compiled. ``tvm.compile`` of the same network is timed
too (it must cost about what the cold path costs). The load average is recorded beside
the figures: absolute times on a shared machine move with it; the ratios less.

**Noise** (``--part noise``, ``--noise-seconds``, default 240): a reference network (the
smallest), two random networks and two blocks, compiled once, then timed in rounds (one
repeat of at least 10 ms each, in turn) for that long, on both clocks (thread CPU time
and elapsed time); reported: the CV and 1-99 % range, over 15-repeat windows, of each
item's median as timed and of its median ratio to the reference repeat beside it (what
drift correction does). The machine's load average is recorded beside them.

**Replay** (``--part replay``): reads (or first builds, through ``predictor_accuracy.py``) a
workspace holding a profile made by ``edgenas profile`` and the end-to-end measurements of
validation networks it never saw. Reports the profile's total wall time and measurement
count, then replays the measurement log: the block-sum predictor is refitted on the first
``k`` blocks in the order the adaptive sampler measured them (with the training networks
measured by then: they are interleaved), scored on the validation networks, at the wall
time the k-th block was stored. The first ``k`` that reaches
95 % within ±10 % gives the cost to reach the target (target: under 20 minutes on 2 cores).

Full size (the replay reuses the predictor_accuracy workspace if given)::

    python experiments/bench/profile_cost.py --workspace /tmp/edgenas-bench --out experiments/results/profile_cost.json

CI size (the breakdown on a tiny space, the replay of a smoke profile)::

    python experiments/bench/profile_cost.py --smoke
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import predictor_accuracy  # noqa: E402
from _report import device_name, emit, write_results  # noqa: E402

BENCH = "profile_cost"
GOAL = 0.95


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--device", default="bench-cpu")
    parser.add_argument("--step", type=int, default=8, help="blocks between replay points")
    parser.add_argument("--part", choices=("all", "breakdown", "noise", "replay"), default="all")
    parser.add_argument("--noise-seconds", type=float, default=240.0)
    parser.add_argument("--validation-db", default=None, help="as in predictor_accuracy.py")
    parser.add_argument("--seed", type=int, default=1, help="seed of the breakdown's network")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    records: list[dict[str, Any]] = []
    if args.part in ("all", "breakdown"):
        breakdown(args, records)
    if args.part in ("all", "noise"):
        noise(args, records)
    if args.part in ("all", "replay"):
        replay(args, records)
    if args.out:
        write_results(records, BENCH, args.out)
    return records


PHASES = ("export", "import", "relax_pipeline", "kernel_names", "vm_codegen", "kernel_build", "link", "load", "time")


def breakdown(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    """Seconds per compile phase: a whole network cold, its blocks cold, the network warm."""
    import tvm

    from latency_predictors.kernel_cache import CompileStats
    from latency_predictors.timing import TimingConfig
    from latency_predictors.tvm_profiler import TVMProfiler, to_relax, to_relax_many
    from search_spaces import get_space

    space = _tiny_space() if args.smoke else get_space("mbv3", preset="small")
    arch = space.sample(random.Random(args.seed))
    blocks = space.blocks(arch)
    timing = TimingConfig(clock="cpu")
    device = device_name("cpu") + " TVM llvm 1 thread, untuned"
    load_before = os.getloadavg()

    def profile(module: Any, shape: tuple[int, ...], profiler: Any) -> dict[str, float]:
        before = dict(profiler.stats.seconds)
        t0 = time.perf_counter()
        profiler.prepare(module, shape)()
        total = time.perf_counter() - t0
        out = {k: profiler.stats.seconds.get(k, 0.0) - before.get(k, 0.0) for k in PHASES}
        return {**out, "total": total}

    target = {"kind": "llvm", "num-cores": 1}
    # the first torch.export and TVM build of a process pay one-off set-up costs (~10 s): not the network's
    TVMProfiler(target, timing=timing).prepare(space.build_block(blocks[0]), blocks[0].in_shape)
    cold_net = profile(space.build_static(arch), space.input_shape(arch), TVMProfiler(target, timing=timing))
    block_phases = [profile(space.build_block(b), b.in_shape, TVMProfiler(target, timing=timing)) for b in blocks]
    warm = TVMProfiler(target, timing=timing)  # one cache for the blocks and then the network
    cached_blocks = [profile(space.build_block(b), b.in_shape, warm) for b in blocks]
    built_by_blocks = warm.stats.kernels_built
    warm_net = profile(space.build_static(arch), space.input_shape(arch), warm)
    t0 = time.perf_counter()
    tvm.compile(to_relax(space.build_static(arch), space.input_shape(arch)), target=tvm.target.Target(target))
    plain_compile = time.perf_counter() - t0
    side = CompileStats()  # the blocks exported and imported 8 at a time, as the profile does
    for start in range(0, len(blocks), 8):
        part = blocks[start:start + 8]
        to_relax_many([space.build_block(b) for b in part], [b.in_shape for b in part], side)
    load_after = os.getloadavg()
    config = {"space": "tiny" if args.smoke else "mbv3/small", "arch": space.arch_key(arch), "blocks": len(blocks),
              "kernels_built_by_blocks": built_by_blocks,
              "kernels_reused_by_network": warm.stats.kernels_reused, "load_average_1min": [load_before[0], load_after[0]],
              "smoke": args.smoke, "unit_note": "seconds; load is LLVM's lazy machine-code generation"}
    mean_block = {k: sum(b[k] for b in block_phases) / len(block_phases) for k in (*PHASES, "total")}
    mean_cached = {k: sum(b[k] for b in cached_blocks) / len(cached_blocks) for k in (*PHASES, "total")}
    for label, phases in (("network_cold", cold_net), ("block_cold_mean", mean_block),
                          ("block_cached_mean", mean_cached), ("network_warm", warm_net)):
        for phase in (*PHASES, "total"):
            emit(records, BENCH, f"{label}_{phase}_s", phases[phase], "s", device, config)
    emit(records, BENCH, "network_tvm_compile_plain_s", plain_compile, "s", device,
         {**config, "note": "tvm.compile alone (no export, import, load or timing)"})
    emit(records, BENCH, "network_warm_over_cold", warm_net["total"] / cold_net["total"], "ratio", device, config)
    for phase in ("export", "import"):
        emit(records, BENCH, f"block_side_by_side_mean_{phase}_s", side.seconds[phase] / len(blocks), "s", device,
             {**config, "note": "the blocks exported and imported 8 at a time (to_relax_many)"})
    emit(records, BENCH, "network_cold_over_block_cold", cold_net["total"] / mean_block["total"], "ratio", device,
         config)


def noise(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    """How much one item's timing moves on this machine, as timed and drift corrected."""
    from latency_predictors.timing import TimingConfig
    from latency_predictors.tvm_profiler import TVMProfiler
    from search_spaces import get_space

    space = _tiny_space() if args.smoke else get_space("mbv3", preset="small")
    seconds = 20.0 if args.smoke else args.noise_seconds
    profilers = {clock: TVMProfiler({"kind": "llvm", "num-cores": 1}, timing=TimingConfig(clock=clock))
                 for clock in ("cpu", "wall")}
    rng = random.Random(args.seed)
    nets = [space.smallest(), space.sample(rng), space.sample(rng)]
    blocks = space.blocks(nets[1])
    items = {"reference": (space.build_static(nets[0]), space.input_shape(nets[0])),
             "network_a": (space.build_static(nets[1]), space.input_shape(nets[1])),
             "network_b": (space.build_static(nets[2]), space.input_shape(nets[2])),
             "block_a": (space.build_block(blocks[2]), blocks[2].in_shape),
             "block_b": (space.build_block(blocks[-3]), blocks[-3].in_shape)}
    load_before = os.getloadavg()[0]
    timers = {(clock, name): p.prepare(*items[name]) for clock, p in profilers.items() for name in items}
    readings: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in timers if key[1] != "reference"}
    end, rounds = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for clock, name in readings:  # each item paired with a reference repeat beside it (ABBA over rounds)
            cfg = profilers[clock].timing.single()
            ref, item = timers[(clock, "reference")], timers[(clock, name)]
            if rounds % 2 == 0:
                x, r = item(cfg), ref(cfg)
            else:
                r, x = ref(cfg), item(cfg)
            readings[(clock, name)].append((x.results_ms[0], r.results_ms[0]))
        rounds += 1
    device = device_name("cpu") + " TVM llvm 1 thread, untuned"
    window = 15
    config = {"space": "tiny" if args.smoke else "mbv3/small", "seconds": seconds, "window_repeats": window,
              "rounds": rounds, "load_average_1min": [load_before, os.getloadavg()[0]], "smoke": args.smoke}
    for (clock, name), pairs in readings.items():
        x = np.asarray([a for a, _ in pairs])
        ref = np.asarray([b for _, b in pairs])
        n = len(x) // window
        if n < 2:
            continue
        raw = np.asarray([np.median(x[i * window:(i + 1) * window]) for i in range(n)])
        ratio = np.asarray([np.median(x[i * window:(i + 1) * window] / ref[i * window:(i + 1) * window])
                            for i in range(n)])
        for label, v in (("as_timed", raw), ("corrected", ratio)):
            cfg = {**config, "item": name, "clock": clock, "windows": n}
            emit(records, BENCH, f"noise_{clock}_{label}_cv", float(100 * v.std(ddof=1) / v.mean()), "%", device, cfg)
            spread = (np.percentile(v, 99) - np.percentile(v, 1)) / np.median(v)
            emit(records, BENCH, f"noise_{clock}_{label}_range", float(100 * spread), "%", device, cfg)


def _tiny_space() -> Any:
    from search_spaces import get_space

    return get_space("mbv3", preset="small", stage_channels=(8, 8, 16, 16, 16), resolutions=(16,),
                     final_expand=32, feature_mix=32, depths=(1, 2), kernels=(3, 5), expands=(3,))


def replay(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    """Accuracy against the blocks measured, replayed from a profile's measurement log: the
    block-sum model refitted on the first k blocks and the training networks measured by
    then (they are interleaved with the blocks), at the wall time the k-th block was stored."""
    from latency_predictors.device_profile import DeviceProfile
    from latency_predictors.measurements import MeasurementStore
    from latency_predictors.metrics import validation_figures
    from latency_predictors.predictors import BlockSumRegressor
    from search_spaces import BlockSpec

    pa_args = ["--device", args.device] + (["--workspace", args.workspace] if args.workspace else [])
    pa_args += ["--smoke"] if args.smoke else []
    pa_args += ["--validation-db", args.validation_db] if args.validation_db else []
    parsed = predictor_accuracy.parse(pa_args)
    ws = Path(parsed.workspace)
    path = ws / "profiles" / f"{args.device}.json"
    if not path.is_file() or not _validation(ws, args.device, DeviceProfile.load(path), args.validation_db):
        predictor_accuracy.main(pa_args)
    profile = DeviceProfile.load(ws / "profiles" / f"{args.device}.json")
    space = profile.build_space()
    store = MeasurementStore(f"sqlite:///{ws / 'measurements.db'}")
    rows = store.query(args.device, space=space.name)
    blocks = [m for m in rows if m.role == "block"]
    train = [m for m in rows if m.role == "train"]
    valid = _validation(ws, args.device, profile, args.validation_db)
    start = min(m.created for m in rows)
    vnets = [space.blocks(space.arch_from_json(m.item)) for m in valid]
    truth = np.asarray([predictor_accuracy.truth_ms(m, profile) for m in valid])
    device = device_name("cpu") + f" TVM llvm 1 thread, untuned, {profile.timing.get('clock', 'wall')} clock"
    config = {"space": "mbv3/small", "validation_networks": len(valid), "train_networks": len(train),
              "counts": profile.counts, "smoke": args.smoke}  # fmt: skip
    if profile.build_seconds is not None:
        emit(records, BENCH, "profile_wall_time", profile.build_seconds / 60, "min", device, config)
    emit(records, BENCH, "profile_measurements", sum(profile.counts.values()), "count", device, config)
    reached = None
    for k in sorted({*range(args.step, len(blocks), args.step), len(blocks)}):
        used = blocks[:k]
        nets_by_then = [m for m in train if m.created <= used[-1].created]
        model = BlockSumRegressor(random_state=0).fit(
            [space.blocks(space.arch_from_json(m.item)) for m in nets_by_then], [m.median_ms for m in nets_by_then],
            block_X=[BlockSpec.from_json(_json(m.item)) for m in used], block_y=[m.median_ms for m in used],
        )  # fmt: skip
        f = validation_figures(truth, model.predict(vnets))
        wall = (used[-1].created - start).total_seconds()
        n_meas = sum(1 for m in rows if m.created <= used[-1].created)
        point = {**config, "blocks": k, "train_networks_by_then": len(nets_by_then), "measurements": n_meas,
                 "wall_min": wall / 60,
                 "mape_pct": f["mape_pct"], "spearman": f["spearman"]}  # fmt: skip
        emit(records, BENCH, "replay_within_10pct", 100 * f["within_10pct"], "%", device, point)
        if reached is None and f["within_10pct"] >= GOAL:
            reached = point
    if reached is not None:
        emit(records, BENCH, "wall_time_to_95pct_within_10pct", reached["wall_min"], "min", device, reached)
        emit(records, BENCH, "measurements_to_95pct_within_10pct", reached["measurements"], "count", device, reached)
    else:
        emit(records, BENCH, "wall_time_to_95pct_within_10pct", None, "min", device,  # type: ignore[arg-type]
             {**config, "note": "not reached with the measurements of this profile"})


def _validation(ws: Path, device: str, profile: Any, validation_db: str | None) -> list[Any]:
    """The validation networks predictor_accuracy measured for this profile."""
    from latency_predictors.measurements import MeasurementStore

    db = ws / "measurements.db"
    if not db.is_file():
        return []
    store = MeasurementStore(f"sqlite:///{db}")
    vstore = MeasurementStore(validation_db) if validation_db else store
    used = {m.item for m in store.query(device)}
    rows = vstore.query(predictor_accuracy.validation_device(profile), role="holdout")
    return [m for m in rows if m.item not in used]


def _json(text: str) -> dict[str, Any]:
    import json

    return json.loads(text)


if __name__ == "__main__":
    main()
