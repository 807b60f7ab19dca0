"""The search against a known optimum: NAS-Bench-201, 13 devices, leave-one-device-out.

For each device: 10 latency measurements (chosen by the few-shot regressor's D-optimal
design, which never looks at the device's latencies) are imported with
``edgenas devices import`` (few-shot predictor; the device's own column is never a
feature), then for budgets at the 25th/50th/75th percentile of the device's *true*
latencies ``edgenas search`` runs (NSGA-II, buffered local engine, ``--safety-margin
auto``) next to random search with the same number of trials. Reported: the true latency
of the recommended arch (violations), its regret in CIFAR-100 validation accuracy
(12-epoch table) against the best arch that truly fits, and the hypervolume over trials.

    python experiments/bench/search_nb201.py            # 13 devices x 3 budgets x 300 trials
    python experiments/bench/search_nb201.py --smoke    # 2 devices x 1 budget x 60 trials
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import device_name, emit, write_results  # noqa: E402

BENCH = "search_nb201"


def hypervolume(acc: np.ndarray, lat: np.ndarray, budget: float) -> float:
    """Area dominated in (accuracy up, latency down) within [0, 100] x [0, budget], normalised."""
    ok = lat <= budget
    points = sorted(zip(lat[ok], acc[ok]))
    area, best = 0.0, 0.0
    edges = [p[0] for p in points] + [budget]
    for (lat_i, a), nxt in zip(points, edges[1:]):
        best = max(best, a)
        area += best * (nxt - lat_i)
    return area / (100.0 * budget)


def import_device(ws: Path, device: str, latency: np.ndarray, n: int) -> None:
    from latency_predictors.fewshot import FewShotLatencyRegressor
    from nas.cli import main
    from search_spaces import get_space

    archs = get_space("nb201").enumerate()
    X = np.array([a.op_counts() for a in archs], dtype=float)
    rows = FewShotLatencyRegressor(n_arch_features=X.shape[1]).select(X, n)
    path = ws / f"{device}.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "latency_ms"])
        w.writerows([int(r), float(latency[r])] for r in rows)
    assert main(["devices", "import", device, "--space", "nb201", "--measurements", str(path),
                 "--workspace", str(ws)]) == 0


def search(ws: Path, device: str, budget: float, trials: int, sampler: str, seed: int) -> tuple:
    from nas.search import Budget, SearchSettings, SearchSpec
    from nas.search.runner import prepare, run_search

    spec = SearchSpec("nb201", {}, (device,), Budget(max_latency_ms=budget), workspace=str(ws))
    problem = prepare(spec, "auto")
    settings = SearchSettings(trials=trials, sampler=sampler, seed=seed, buffered=True,
                              study=f"{device}-{budget:.6g}-{sampler}")
    result, study = run_search(problem, settings, quiet=True)
    return result, study, problem.spec.budget.safety_margin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--devices", nargs="*")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()

    from latency_predictors.nb201_table import load_nb201_latency
    from nas.tabular import load_nb201_accuracy

    table = load_nb201_latency()
    acc = load_nb201_accuracy().accuracy("cifar100", "valid")
    devices = args.devices or (["pixel3", "gold_6240"] if args.smoke else list(table.devices))
    percentiles = [50] if args.smoke else [25, 50, 75]
    trials = 60 if args.smoke else args.trials
    cpu = device_name("cpu")
    records: list[dict] = []
    rows = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        for device in devices:
            true = table.column(device)
            import_device(ws, device, true, args.samples)
            for pct in percentiles:
                budget = float(np.percentile(true, pct))
                best = float(acc[true <= budget].max())
                for sampler in ("nsga2", "random"):
                    result, study, margin = search(ws, device, budget, trials, sampler, args.seed)
                    rec = result["recommended"]
                    idx = [t.user_attrs["arch"] for t in study.trials if t.state.name == "COMPLETE"]
                    from search_spaces import get_space

                    space = get_space("nb201")
                    ix = np.array([space.arch_from_json(a).index for a in idx])
                    hv = hypervolume(acc[ix], true[ix], budget)
                    if rec is None:
                        row = dict(device=device, pct=pct, sampler=sampler, found=False, violation=False,
                                   regret=best, hv=hv, margin=margin)
                    else:
                        i = space.arch_from_json(rec["arch"]).index
                        row = dict(device=device, pct=pct, sampler=sampler, found=True,
                                   violation=bool(true[i] > budget), regret=best - float(acc[i]),
                                   true_ms=float(true[i]), budget_ms=budget, hv=hv, margin=margin)
                    rows.append(row)
                    print(row, file=sys.stderr, flush=True)
    config = {"devices": devices, "percentiles": percentiles, "trials": trials, "samples": args.samples,
              "predictor": "few-shot (devices import), own column never used", "margin": "auto",
              "accuracy": "CIFAR-100 validation, 12-epoch NAS-Bench-201 table", "engine": "local --buffered"}
    for sampler in ("nsga2", "random"):
        sel = [r for r in rows if r["sampler"] == sampler]
        emit(records, BENCH, f"mean_regret_{sampler}", float(np.mean([r["regret"] for r in sel])), "accuracy points", cpu, config)
        emit(records, BENCH, f"max_regret_{sampler}", float(np.max([r["regret"] for r in sel])), "accuracy points", cpu, config)
        emit(records, BENCH, f"violations_{sampler}", int(sum(r["violation"] for r in sel)), f"of {len(sel)} searches", cpu, config)
        emit(records, BENCH, f"no_feasible_found_{sampler}", int(sum(not r["found"] for r in sel)), f"of {len(sel)} searches", cpu, config)
        emit(records, BENCH, f"mean_hypervolume_{sampler}", float(np.mean([r["hv"] for r in sel])), "fraction of [0,100]x[0,budget]", cpu, config)
    emit(records, BENCH, "wall_time", time.time() - start, "s", cpu, config)
    if args.out or not args.smoke:
        write_results(records, BENCH, args.out)


if __name__ == "__main__":
    main()
