"""The search against a known optimum: NAS-Bench-201, 13 devices, leave-one-device-out.

For each device: 10 latency measurements (chosen by the few-shot regressor's D-optimal
design over connected cells, which never looks at the device's latencies) are imported
with ``edgenas devices import`` (few-shot predictor; the device's own column is never a
feature), then for budgets at the 25th/50th/75th percentile of the device's *true*
latencies ``edgenas search`` runs with 300 trials (buffered local engine). Reported per
sampler: the true latency of the recommended arch (violations), its regret in CIFAR-100
validation accuracy (12-epoch table) against the best arch that truly fits, and the
hypervolume over trials. Protocols, so a miss can be traced to its cause:

* ``fewshot``: the issue's protocol (predicted latency, ``--safety-margin auto``), samplers
  nsga2 (the default), screened and random.
* ``exact``: the device's measured column as the cost (``table:DEVICE``, margin 0): the
  search alone, with a perfect latency predictor.
* ``floor``: no search: the most accurate arch among *all* 15,625 that the few-shot
  predictor says fit (with the same margin): the best any search can do with that
  predictor.
* ``verified``: the screened search with margin 0 on the few-shot predictor, then up to
  ``--verify`` of its most accurate predicted-feasible archs are measured (the table's
  true latency stands in for measuring on the device) until one truly fits; if none does,
  the most accurate trial within the auto margin is taken unmeasured: what a user who
  measures the winners before shipping gets, for that many extra measurements.
* ``loop``: ``edgenas search --verify 5`` (:mod:`nas.search.verify`): the search explores a
  band over the budget, then at most 5 candidates are measured one at a time (the table
  stands in for the device), each chosen by expected accuracy gain x probability of
  fitting, stored with the device's measurements and the predictor refitted before the
  next; the recommendation is the most accurate arch measured to fit.
* ``suggest``: ``edgenas devices suggest -n 5`` (chosen at once near the budget), the 5
  archs "measured" and added (``devices import --add``), then a plain search with the
  refined predictor and ``--safety-margin auto``: the loop for a device only reachable
  as a CSV (its pick is predicted, not measured).

``loop`` and ``suggest`` change the device's measurements, so each runs on its own copy of
the workspace (the 10 imported rows only).

Each finished search is appended to ``--rows`` (JSON lines) and skipped on a rerun, so an
interrupted run resumes.

    python experiments/bench/search_nb201.py            # 13 devices x 3 budgets, every protocol
    python experiments/bench/search_nb201.py --smoke    # 2 devices x 1 budget x 60 trials
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS_DIR, device_name, emit, write_results  # noqa: E402

BENCH = "search_nb201"
RUNS = (("fewshot", "nsga2"), ("fewshot", "screened"), ("fewshot", "random"),
        ("exact", "screened"), ("exact", "nsga2"), ("floor", "none"), ("verified", "screened"),
        ("loop", "screened"), ("suggest", "screened"))


def _uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


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


def import_device(ws: Path, device: str, latency: np.ndarray, n: int, seed: int) -> None:
    from latency_predictors.fewshot import FewShotLatencyRegressor
    from nas.cli import main
    from search_spaces import get_space

    archs = get_space("nb201").enumerate()
    X = np.array([a.op_counts() for a in archs], dtype=float)
    pool = np.flatnonzero([a.connected for a in archs])
    rows = pool[FewShotLatencyRegressor(n_arch_features=X.shape[1], random_state=seed).select(X[pool], n)]
    path = ws / f"{device}.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arch", "latency_ms"])
        w.writerows([int(r), float(latency[r])] for r in rows)
    assert main(["devices", "import", device, "--space", "nb201", "--measurements", str(path),
                 "--workspace", str(ws)]) == 0


def search(ws: Path, device: str, budget: float, trials: int, sampler: str, seed: int,
           margin: float | str) -> tuple:
    from nas.search import Budget, SearchSettings, SearchSpec
    from nas.search.runner import prepare, run_search

    spec = SearchSpec("nb201", {}, (device,), Budget(max_latency_ms=budget), workspace=str(ws))
    problem = prepare(spec, margin)
    settings = SearchSettings(trials=trials, sampler=sampler, seed=seed, buffered=True,
                              study=f"{device}-{budget:.6g}-{sampler}-{margin}")
    result, study = run_search(problem, settings, quiet=True)
    return result, study, problem


def run_one(ws: Path, protocol: str, sampler: str, device: str, true: np.ndarray, acc: np.ndarray,
            budget: float, trials: int, seed: int, verify: int) -> dict:
    from search_spaces import get_space

    space = get_space("nb201")
    best = float(acc[true <= budget].max())
    row = dict(protocol=protocol, sampler=sampler, device=device, budget_ms=budget, best=best)
    if protocol == "floor":
        from nas.search.costs import load_device
        from nas.search.runner import auto_margin
        from nas.workspace import Workspace

        cost = load_device(device, space, Workspace(Path(ws)))
        margin = auto_margin([cost])
        pred = cost.predict_latency_ms(space.enumerate())
        i = int(np.argmax(np.where(pred <= budget / (1 + margin), acc, -np.inf)))
        return {**row, "found": True, "violation": bool(true[i] > budget), "regret": best - float(acc[i]),
                "true_ms": float(true[i]), "margin": margin, "hv": None, "measured": 0}
    if protocol in ("loop", "suggest"):
        return {**row, **_device_in_the_loop(ws, protocol, sampler, device, true, acc, budget, trials, seed, verify)}
    name = f"table:{device}" if protocol == "exact" else device
    margin: float | str = 0.0 if protocol in ("exact", "verified") else "auto"
    result, study, problem = search(ws, name, budget, trials, sampler, seed, margin)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    ix = np.array([space.arch_from_json(t.user_attrs["arch"]).index for t in done])
    row.update(hv=hypervolume(acc[ix], true[ix], budget), margin=problem.spec.budget.safety_margin, measured=0)
    rec = result["recommended"]
    if protocol == "verified":
        ok = [(float(acc[i]), int(i)) for t, i in zip(done, ix) if all(v <= 0 for v in t.constraints.values())]
        chosen = None
        for n, (_a, i) in enumerate(sorted(ok, reverse=True)[:verify], start=1):
            row["measured"] = n
            if true[i] <= budget:
                chosen = i
                break
        if chosen is None:  # none of them fits: fall back to the pick the auto margin protects
            from nas.search.costs import load_device
            from nas.search.runner import auto_margin
            from nas.workspace import Workspace

            limit = budget / (1 + auto_margin([load_device(name, space, Workspace(Path(ws)))]))
            safe = [(float(acc[i]), int(i)) for t, i in zip(done, ix)
                    if t.values[1] <= limit]
            if not safe:
                return {**row, "found": False, "violation": False, "regret": best}
            chosen = max(safe)[1]
            row["fallback"] = True
        return {**row, "found": True, "violation": bool(true[chosen] > budget), "regret": best - float(acc[chosen]),
                "true_ms": float(true[chosen])}
    if rec is None:
        return {**row, "found": False, "violation": False, "regret": best}
    i = space.arch_from_json(rec["arch"]).index
    return {**row, "found": True, "violation": bool(true[i] > budget), "regret": best - float(acc[i]),
            "true_ms": float(true[i])}


def _device_in_the_loop(ws: Path, protocol: str, sampler: str, device: str, true: np.ndarray, acc: np.ndarray,
                        budget: float, trials: int, seed: int, verify: int) -> dict:
    """``loop`` (search --verify) or ``suggest`` (devices suggest + import --add + search), on
    a copy of the workspace; a "measurement" reads the device's column of the table."""
    import shutil

    from nas.devices import add_measurements, suggest_measurements, write_todo
    from nas.search import Budget, SearchSettings, SearchSpec
    from nas.search.runner import search as run
    from nas.search.verify import Measured, StoredDevice
    from nas.workspace import Workspace
    from search_spaces import get_space

    space = get_space("nb201")
    copy = Path(tempfile.mkdtemp(dir=ws.parent))
    try:
        import sqlite3

        shutil.copytree(ws / "profiles", copy / "profiles")
        with sqlite3.connect(ws / "measurements.db") as src, sqlite3.connect(copy / "measurements.db") as dst:
            src.backup(dst)  # with what the write-ahead log holds
        workspace = Workspace(copy)
        spec = SearchSpec("nb201", {}, (device,), Budget(max_latency_ms=budget), workspace=str(copy))
        measured = 0
        if protocol == "loop":
            loops = {device: StoredDevice(workspace, device, space, lambda a: Measured(float(true[a.index])))}
            settings = SearchSettings(trials=trials, sampler=sampler, seed=seed, buffered=True, verify=verify)
            result, _ = run(spec, settings, "auto", quiet=True, loops=loops)
            measured = result["verification"]["measurements"]
            verified = bool(result["recommended"] and result["recommended"].get("verified"))
        else:
            picks = suggest_measurements(workspace, device, budget, verify, trials=trials, seed=seed)
            todo = write_todo(copy / "todo.csv", picks, space)
            rows = list(csv.reader(todo.open()))
            for r in rows[1:]:
                r[1] = str(float(true[space.arch_from_json(r[0]).index]))
            with todo.open("w", newline="") as fh:
                csv.writer(fh).writerows(rows)
            measured = add_measurements(workspace, device, todo, progress=False).added
            result, _ = run(spec, SearchSettings(trials=trials, sampler=sampler, seed=seed, buffered=True), "auto",
                            quiet=True)
            verified = False
        rec = result["recommended"]
        if rec is None:
            return {"found": False, "violation": False, "regret": float(acc[true <= budget].max()),
                    "measured": measured, "hv": None, "margin": result["budget"]["safety_margin"]}
        i = space.arch_from_json(rec["arch"]).index
        best = float(acc[true <= budget].max())
        return {"found": True, "violation": bool(true[i] > budget), "regret": best - float(acc[i]),
                "true_ms": float(true[i]), "measured": measured, "verified": verified, "hv": None,
                "margin": result["budget"]["safety_margin"]}
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--verify", type=int, default=5, help="measurements of the verified protocol")
    parser.add_argument("--devices", nargs="*")
    parser.add_argument("--runs", nargs="*", help="PROTOCOL:SAMPLER pairs (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", help="JSON lines of finished searches (resume); default under experiments/results")
    parser.add_argument("--out")
    args = parser.parse_args()

    from latency_predictors.nb201_table import load_nb201_latency
    from nas.tabular import load_nb201_accuracy

    table = load_nb201_latency()
    acc = load_nb201_accuracy().accuracy("cifar100", "valid")
    devices = args.devices or (["pixel3", "gold_6240"] if args.smoke else list(table.devices))
    percentiles = [50] if args.smoke else [25, 50, 75]
    trials = 60 if args.smoke else args.trials
    runs = [tuple(r.split(":")) for r in args.runs] if args.runs else list(RUNS)
    rows_path = Path(args.rows) if args.rows else (
        Path(tempfile.mkdtemp()) / "rows.jsonl" if args.smoke else RESULTS_DIR / f"{BENCH}_rows.jsonl")
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.exists() else []
    key = lambda r: (r["protocol"], r["sampler"], r["device"], round(r["budget_ms"], 9))  # noqa: E731
    finished = {key(r) for r in rows}
    cpu = device_name("cpu")
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        for device in devices:
            true = table.column(device)
            import_device(ws, device, true, args.samples, args.seed)
            for pct in percentiles:
                budget = float(np.percentile(true, pct))
                for protocol, sampler in runs:
                    if (protocol, sampler, device, round(budget, 9)) in finished:
                        continue
                    t0 = time.time()
                    row = run_one(ws, protocol, sampler, device, true, acc, budget, trials, args.seed, args.verify)
                    row.update(pct=pct, seconds=time.time() - t0)
                    rows.append(row)
                    rows_path.parent.mkdir(parents=True, exist_ok=True)
                    with rows_path.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(f"{protocol:8s} {sampler:8s} {device:14s} p{pct} regret {row['regret']:.2f} "
                          f"violation {row['violation']} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    config = {"devices": devices, "percentiles": percentiles, "trials": trials, "samples": args.samples,
              "verify": args.verify, "predictor": "few-shot (devices import), own column never used",
              "margin": "auto (fewshot, floor, suggest), 0 (exact, verified), -band (loop)",
              "uptime": _uptime(),
              "accuracy": "CIFAR-100 validation, 12-epoch NAS-Bench-201 table", "engine": "local --buffered"}
    records: list[dict] = []
    for protocol, sampler in runs:
        sel = [r for r in rows if r["protocol"] == protocol and r["sampler"] == sampler and r["device"] in devices]
        if not sel:
            continue
        tag = f"{protocol}_{sampler}"
        emit(records, BENCH, f"mean_regret_{tag}", float(np.mean([r["regret"] for r in sel])), "accuracy points", cpu, config)
        emit(records, BENCH, f"max_regret_{tag}", float(np.max([r["regret"] for r in sel])), "accuracy points", cpu, config)
        emit(records, BENCH, f"violations_{tag}", int(sum(r["violation"] for r in sel)), f"of {len(sel)} searches", cpu, config)
        emit(records, BENCH, f"no_feasible_found_{tag}", int(sum(not r["found"] for r in sel)), f"of {len(sel)} searches", cpu, config)
        hv = [r["hv"] for r in sel if r.get("hv") is not None]
        if hv:
            emit(records, BENCH, f"mean_hypervolume_{tag}", float(np.mean(hv)), "fraction of [0,100]x[0,budget]", cpu, config)
        if protocol in ("verified", "loop", "suggest"):
            emit(records, BENCH, f"mean_measurements_{tag}", float(np.mean([r["measured"] for r in sel])), "extra measurements", cpu, config)
            emit(records, BENCH, f"max_measurements_{tag}", int(np.max([r["measured"] for r in sel])), "extra measurements", cpu, config)
        if protocol == "loop":
            emit(records, BENCH, f"unverified_{tag}", int(sum(not r.get("verified", False) for r in sel)), f"of {len(sel)} searches", cpu, config)
        emit(records, BENCH, f"mean_seconds_{tag}", float(np.mean([r["seconds"] for r in sel])), "s per search", cpu, config)
    emit(records, BENCH, "wall_time_this_run", time.time() - start, "s", cpu, config)
    if args.out or not args.smoke:
        write_results(records, BENCH, args.out)


if __name__ == "__main__":
    main()
