"""Nebula's Table 1 protocol at small scale: adaptation accuracy and communication per method.

For MNIST-1D and digits, at two levels of label skew (2 and 5 of 10 classes per device),
100 devices with 50-150 samples, 10-25 sampled per round, per-device budgets, failures
and stragglers, every method in the same simulator on the same devices:

- ``one_step``: one environment shift (cloud proxy domain -> device domain), devices'
  data then fixed; accuracy after adapting to it (mean over the last 5 rounds).
- ``continuous``: the environment keeps shifting (every round each device swaps one
  class and 30 % of its data is replaced); accuracy over the last 5 rounds.

plus bytes per device-round relative to FedAvg and HeteroFL, device training memory, and a
small run of the elastic (mbv3 supernet) decomposition on digits.

Every finished run is kept under ``--runs-dir`` and the results file is rewritten after
each run from all finished runs, so an interrupted benchmark resumes where it stopped
(finished runs are skipped, an unfinished one resumes at its last round). Two processes
may share the work (e.g. ``--datasets mnist1d`` and ``--datasets digits``).

    python experiments/bench/adapt.py                      # full size (see docs/benchmarks.md)
    python experiments/bench/adapt.py --datasets digits    # one data set
    python experiments/bench/adapt.py --smoke              # CI size
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from experiments.bench._report import device_name, emit, write_results  # noqa: E402
from nas.adapt.config import SimulationConfig  # noqa: E402
from nas.adapt.data import load_domain_data  # noqa: E402
from nas.adapt.simulator import simulate  # noqa: E402
from nas.config import load_config  # noqa: E402
from nas.report.adapt import comm_ratios  # noqa: E402

BENCH = "adapt"
SCENARIOS = ("one_step", "continuous")
BASELINES = ("no_adaptation", "local_only", "fedavg", "heterofl")


def run_config(dataset: str, skew: int, scenario: str, args: argparse.Namespace, out: Path,
               decomposition: str = "modular") -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data": {"name": dataset},
        "devices": {"count": args.devices, "per_round_min": 10, "per_round_max": 25, "classes_per_device": skew,
                    "budget_low": args.budget_low},
        "cloud": {"pretrain_steps": args.pretrain_steps, "sharpen_steps": args.sharpen_steps,
                  "min_importance": args.min_importance},
        "local": {"epochs": args.local_epochs},
        "rounds": args.rounds, "continuous": scenario == "continuous", "drift_share": 0.3,
        "out_dir": str(out), "parallel": args.parallel, "workers": args.workers, "seed": 0,
    }
    if decomposition == "elastic":
        cfg["decomposition"] = "elastic"
        cfg["methods"] = ["nebula", "no_adaptation", "local_only", "fedavg"]
        cfg["rounds"] = args.elastic_rounds
        cfg["cloud"]["pretrain_steps"] = args.elastic_pretrain_steps
        # the elastic space's smallest sub-network needs 28 % of the largest one's training
        # memory (18 % of its compute): budgets start at 30 % so that most devices fit
        cfg["devices"]["budget_low"] = 0.3
    if args.smoke:
        cfg["devices"].update({"count": 30, "per_round_min": 10, "per_round_max": 12})
    return cfg


def run_names(args: argparse.Namespace) -> list[tuple[str, str, int, str, str]]:
    """``(name, dataset, skew, scenario, decomposition)`` of every run, in order."""
    runs = [(f"{d}_m{m}_{s}", d, m, s, "modular") for d in args.datasets for m in args.skews for s in SCENARIOS]
    if args.elastic and "digits" in args.datasets:
        runs.append(("digits_m2_one_step_elastic", "digits", 2, "one_step", "elastic"))
    only = getattr(args, "only", None)
    return [r for r in runs if not only or r[0] in only]


def run_one(name: str, dataset: str, skew: int, scenario: str, decomposition: str, args: argparse.Namespace,
            data_cache: dict[str, Any], root: Path) -> dict[str, Any]:
    """Run (or resume) one configuration; a finished run is read back, not rerun."""
    out = root / name
    done = out / "done.json"
    config = load_config(SimulationConfig, run_config(dataset, skew, scenario, args, out, decomposition))
    if done.is_file():
        finished = json.loads(done.read_text())
        if finished["config"] == _config_dict(config):
            return finished
        raise SystemExit(f"{done} holds a run of another configuration: pass another --runs-dir")
    out.mkdir(parents=True, exist_ok=True)
    sibling = root / f"{dataset}_m{skew}_one_step" / "cloud_pretrained.safetensors"
    if decomposition == "modular" and scenario == "continuous" and sibling.is_file() \
            and not (out / "cloud_pretrained.safetensors").exists():
        shutil.copy(sibling, out / "cloud_pretrained.safetensors")  # same cloud model, trained once (key-checked)
    if dataset not in data_cache:
        data_cache[dataset] = load_domain_data(dataset, seed=0, proxy_samples=3000,
                                               device_samples=4000 if args.smoke else 16000)
    res = simulate(config, progress=not args.quiet, data=data_cache[dataset])
    finished = {"config": res["config"], "summary": res["summary"], "full_model_bytes": res["full_model_bytes"],
                "pretrained_accuracy_device_domain": res["pretrained_accuracy_device_domain"]}
    done.write_text(json.dumps(finished, indent=1))
    return finished


def _config_dict(config: SimulationConfig) -> dict[str, Any]:
    from nas.config import config_to_dict

    return json.loads(json.dumps(config_to_dict(config)))


def _keep(records: list[dict[str, Any]], bench: str, figure: str, value: float, unit: str, device: str,
          config: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`emit` without printing (figures of runs printed before)."""
    record = {"bench": bench, "figure": figure, "value": value, "unit": unit, "device": device, "config": config or {}}
    records.append(record)
    return record


def records_of(dataset: str, skew: int, scenario: str, decomposition: str, finished: dict[str, Any],
               device: str, args: argparse.Namespace, records: list[dict[str, Any]], emit=emit) -> None:  # noqa: ANN001
    """The run's figures as JSON lines: per method, then Nebula's ratios and margins."""
    summary = finished["summary"]
    c = finished["config"]
    conf = {"dataset": dataset, "classes_per_device": skew, "scenario": scenario, "decomposition": decomposition,
            "devices": c["devices"]["count"], "per_round": f'{c["devices"]["per_round_min"]}-{c["devices"]["per_round_max"]}',
            "rounds": c["rounds"], "local_epochs": c["local"]["epochs"], "smoke": args.smoke}
    prefix = f"{dataset}/m{skew}/{scenario}" + ("/elastic" if decomposition == "elastic" else "")
    for method, s in summary.items():
        for key, unit, scale in (("accuracy_round1", "%", 1), ("accuracy_final", "%", 1),
                                 ("accuracy_final_after_training", "%", 1), ("bytes_per_device_round", "bytes", 1),
                                 ("peak_memory_bytes_mean", "MB", 1e-6), ("modules_per_device_mean", "modules", 1)):
            if key in s:
                emit(records, BENCH, f"{prefix}/{method}/{key}", round(s[key] * scale, 3), unit, device, conf)
        emit(records, BENCH, f"{prefix}/{method}/rounds_to_target", s["rounds_to_target"] or -1, "rounds", device,
             {**conf, "target_accuracy": c["target_accuracy"], "-1": "not reached"})
    neb = summary.get("nebula")
    if not neb:
        return
    for base, ratio in comm_ratios(summary).items():
        emit(records, BENCH, f"{prefix}/comm_reduction_vs_{base}", round(ratio, 2), "x", device, conf)
    others = {k: v["accuracy_final"] for k, v in summary.items() if k != "nebula"}
    if others:
        best = max(others, key=others.get)
        emit(records, BENCH, f"{prefix}/nebula_margin_over_best_baseline", round(neb["accuracy_final"] - others[best], 2),
             "points", device, {**conf, "best_baseline": best})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="CI size: 30 devices, 3 rounds, short pretraining")
    parser.add_argument("--datasets", nargs="+", default=["mnist1d", "digits"])
    parser.add_argument("--skews", nargs="+", type=int, default=[2, 5], help="classes per device")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--local-epochs", type=int, default=2)
    parser.add_argument("--pretrain-steps", type=int, default=800)
    parser.add_argument("--sharpen-steps", type=int, default=200)
    parser.add_argument("--min-importance", type=float, default=0.15)
    parser.add_argument("--budget-low", type=float, default=0.15,
                        help="budgets are log-uniform from this fraction of the full model's cost to 1")
    parser.add_argument("--no-elastic", dest="elastic", action="store_false", help="skip the elastic mbv3 run")
    parser.add_argument("--elastic-rounds", type=int, default=4)
    parser.add_argument("--elastic-pretrain-steps", type=int, default=300)
    parser.add_argument("--parallel", choices=("auto", "ray", "sequential"), default="sequential")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs-dir", default="runs/bench_adapt_v4", help="per-run state (resumable)")
    parser.add_argument("--out", help="results JSON (default experiments/results/adapt.json)")
    parser.add_argument("--quiet", action="store_true", help="no per-round progress bars")
    parser.add_argument("--only", nargs="+", help="run only these runs (names as in the progress lines)")
    parser.add_argument("--tables", action="store_true", help="print the finished runs as Markdown tables, run nothing")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.pretrain_steps, args.sharpen_steps = 3, 100, 30
        args.elastic_rounds, args.elastic_pretrain_steps = 2, 30
        args.runs_dir = args.runs_dir + "_smoke"
    if args.tables:
        print(markdown_tables(Path(args.runs_dir)))
        return
    torch.set_num_threads(1)
    root = Path(args.runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    device = device_name("cpu")
    runs = run_names(args)
    data_cache: dict[str, Any] = {}
    start = time.perf_counter()
    for i, (name, dataset, skew, scenario, decomposition) in enumerate(runs, 1):
        state = "starting"
        if (root / name / "done.json").is_file():
            state = "finished before, skipped"
        elif (root / name / "results.json").is_file():
            state = "resuming"
        owner = _locked_by(root / name)
        if owner:
            print(f"[{i}/{len(runs)}] {name}: being run by process {owner}, skipped", file=sys.stderr, flush=True)
            continue
        print(f"[{i}/{len(runs)}] {name}: {state} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        lock = root / name / "lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(str(os.getpid()))
        try:
            finished = run_one(name, dataset, skew, scenario, decomposition, args, data_cache, root)
        finally:
            lock.unlink(missing_ok=True)
        records_of(dataset, skew, scenario, decomposition, finished, device, args, [])
        path = write_all(root, args, device)
        print(f"[{i}/{len(runs)}] {name}: done ({time.perf_counter() - start:.0f} s); {path} holds every finished run",
              file=sys.stderr, flush=True)


def _locked_by(out: Path) -> int | None:
    """The id of another live process running this run, if any (two processes may share the work)."""
    lock = out / "lock"
    try:
        pid = int(lock.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid if pid != os.getpid() else None


def write_all(root: Path, args: argparse.Namespace, device: str) -> Path:
    """Rewrite the results file from every finished run under ``root`` (any process's)."""
    records: list[dict[str, Any]] = []
    everything = argparse.Namespace(**{**vars(args), "datasets": ["mnist1d", "digits"],
                                       "skews": sorted({2, 5, *args.skews}), "elastic": True, "only": None})
    for _, dataset, skew, scenario, decomposition in run_names(everything):
        done = root / _ / "done.json"
        if done.is_file():
            records_of(dataset, skew, scenario, decomposition, json.loads(done.read_text()), device, args,
                       records, emit=_keep)
    return write_results(records, BENCH + ("_smoke" if args.smoke else ""), args.out)


NAMES = {"mnist1d": "MNIST-1D", "digits": "digits", "nebula": "Nebula", "no_adaptation": "no adaptation",
         "local_only": "local only", "fedavg": "FedAvg", "heterofl": "HeteroFL"}


def markdown_tables(root: Path) -> str:
    """Markdown tables from the finished runs under ``root``: per method, then Nebula's margins
    (docs/benchmarks.md generates the same tables from ``experiments/results/adapt.json``)."""
    done = {p.parent.name: json.loads(p.read_text()) for p in sorted(root.glob("*/done.json"))}
    lines = ["| data | skew | method | one-step: acc (%) | continuous: acc (%) | one-step: acc after local training (%) "
             "| continuous: acc after local training (%) | KB per device-round (one-step / continuous) | train memory (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    margins = ["| data | skew | scenario | Nebula margin over best baseline (points) | best baseline | comm. vs FedAvg "
               "| comm. vs HeteroFL | rounds to 80 % (Nebula) |", "|---|---|---|---|---|---|---|---|"]
    for dataset in ("mnist1d", "digits"):
        for skew in (2, 5):
            runs = {s: done.get(f"{dataset}_m{skew}_{s}") for s in SCENARIOS}
            if not all(runs.values()):
                continue
            one, cont = (runs[s]["summary"] for s in SCENARIOS)
            for method in one:
                a, b = one[method], cont[method]
                lines.append(f"| {NAMES[dataset]} | {skew} of 10 | {NAMES[method]} | {a['accuracy_final']:.1f} | "
                             f"{b['accuracy_final']:.1f} | {a['accuracy_final_after_training']:.1f} | "
                             f"{b['accuracy_final_after_training']:.1f} | {a['bytes_per_device_round'] / 1e3:.1f} / "
                             f"{b['bytes_per_device_round'] / 1e3:.1f} | {a['peak_memory_bytes_mean'] / 1e6:.2f} |")
            for scenario, summary in zip(SCENARIOS, (one, cont)):
                neb = summary["nebula"]
                others = {k: v["accuracy_final"] for k, v in summary.items() if k != "nebula"}
                best = max(others, key=others.get)
                ratio = comm_ratios(summary)
                reach = neb["rounds_to_target"] or "not reached"
                margins.append(f"| {NAMES[dataset]} | {skew} of 10 | {scenario.replace('_', '-')} | "
                               f"{neb['accuracy_final'] - others[best]:+.1f} | {NAMES[best]} | {ratio['fedavg']:.2f}x | "
                               f"{ratio['heterofl']:.2f}x | {reach} |")
    elastic = done.get("digits_m2_one_step_elastic")
    out = "\n".join(lines) + "\n\n" + "\n".join(margins)
    if elastic:
        rows = ["| elastic (mbv3), digits, 2 of 10, one-step | acc (%) | acc after local training (%) "
                "| KB per device-round | blocks per device |", "|---|---|---|---|---|"]
        for method, s in elastic["summary"].items():
            rows.append(f"| {NAMES[method]} | {s['accuracy_final']:.1f} | {s['accuracy_final_after_training']:.1f} | "
                        f"{s['bytes_per_device_round'] / 1e3:.1f} | {s['modules_per_device_mean']:.1f} |")
        out += "\n\n" + "\n".join(rows)
    return out


if __name__ == "__main__":
    main()
