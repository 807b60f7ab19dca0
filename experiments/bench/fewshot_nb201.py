"""Few-shot latency transfer on NAS-Bench-201: leave-one-device-out over 13 devices.

Each device of ``shared/data/nb201/latency_ms.csv`` in turn is the "new" device: a
predictor of its latency is built from n of its measurements (n = 5, 10, 20, 50) and
scored on every other cell (Spearman, Kendall, share within ±10 %, MAPE). Methods:

* ``additive``: :class:`FewShotLatencyRegressor` as ``edgenas devices import`` builds it
  (op counts and their dead part, readings weighted by relative noise plus rounding,
  dead-code hypothesis chosen by leave-one-out), samples by its D-optimal design over
  connected cells (ours, production);
* ``additive_counts``: the previous production model: op counts only, unweighted least
  squares, design on op counts;
* ``transfer``: the same estimator on the reference devices' latencies only (non-negative
  mix of devices), samples by its design on them;
* ``flops``: latency proportional to FLOPs, the factor fitted on random samples;
* ``ridge``: scikit-learn ``Ridge()`` on the reference devices' log latencies, random samples;
* at n = 10 also ``ridge_help10`` and ``additive_help10``: HELP's ten fixed reference cells;
* ``ceiling_additive`` / ``ceiling_counts``: ``additive`` / ``additive_counts`` fitted on
  *all* connected cells (not few-shot; how far each model can go given the noise).

Protocols: ``loose`` leaves out only the device's column; ``strict`` also leaves out the
columns of the same GPU at other batch sizes (1080ti_1/32/256, titanx_1/32/256). Random
choices repeat over ``--seeds`` seeds; figures are means over seeds.

Full size (about a minute on 2 cores)::

    python experiments/bench/fewshot_nb201.py --out experiments/results/fewshot_nb201.json

CI::

    python experiments/bench/fewshot_nb201.py --smoke
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats
from sklearn.linear_model import Ridge

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import emit, write_results  # noqa: E402

from latency_predictors.fewshot import FewShotLatencyRegressor  # noqa: E402
from latency_predictors.fewshot_adapter import arch_features, make_regressor  # noqa: E402
from latency_predictors.nb201_table import load_nb201_latency  # noqa: E402
from search_spaces.nb201 import NB201Space  # noqa: E402

BENCH = "fewshot_nb201"
HELP_CELLS = [11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462]
FIGURES = (("spearman", "rho"), ("kendall", "tau"), ("within_10pct", "share"), ("mape_pct", "%"))


def scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    rel = np.abs(pred - true) / true
    return {
        "spearman": float(stats.spearmanr(pred, true).statistic),
        "kendall": float(stats.kendalltau(pred, true).statistic),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "mape_pct": float(100 * rel.mean()),
    }


def make_method(method: str, seed: int, n_arch: int) -> FewShotLatencyRegressor:
    """The few-shot regressor behind ``method`` (X: reference latencies, then arch features)."""
    if method == "transfer":
        return FewShotLatencyRegressor(random_state=seed)
    if method == "additive_counts":  # op counts only (first half of the arch features), unweighted
        return FewShotLatencyRegressor(n_arch_features=n_arch // 2, rel_noise=None, resolution=None,
                                       random_state=seed)
    return make_regressor(n_arch, random_state=seed)


def run_method(method: str, n: int, seed: int, y: np.ndarray, ref: np.ndarray,
               feats: np.ndarray, flops: np.ndarray, connected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sampled rows, predicted ms of every cell) for one method, sample size and seed."""
    rng = np.random.RandomState(seed)
    if method in ("additive", "additive_counts", "transfer", "additive_help10"):
        if method == "transfer":
            X = ref
        elif method == "additive_counts":
            X = np.column_stack([ref, feats[:, : feats.shape[1] // 2]])
        else:
            X = np.column_stack([ref, feats])
        reg = make_method(method, seed, feats.shape[1])
        if method == "additive_help10":
            rows = np.array(HELP_CELLS)
        else:
            rows = connected[reg.select(X[connected], n)]
        return rows, reg.fit(X[rows], y[rows]).predict(X)
    rows = np.array(HELP_CELLS) if method == "ridge_help10" else rng.choice(len(y), n, replace=False)
    if method == "flops":
        return rows, flops * np.exp(np.mean(np.log(y[rows] / flops[rows])))
    model = Ridge(alpha=1.0).fit(np.log(ref[rows]), np.log(y[rows]))
    return rows, np.exp(model.predict(np.log(ref)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 devices, n=10, 1 seed (CI)")
    parser.add_argument("--samples", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--devices", nargs="*", help="target devices (default: all 13)")
    parser.add_argument("--data", help="NAS-Bench-201 data folder (default: $EDGENAS_NB201_DIR or ../shared/data/nb201)")
    parser.add_argument("--out", help="write all figures here (default with full runs: experiments/results/fewshot_nb201.json)")
    args = parser.parse_args(argv)

    table = load_nb201_latency(args.data)
    devices = args.devices or list(table.devices)
    samples, seeds = args.samples, args.seeds
    if args.smoke:
        devices, samples, seeds = devices[:2] if not args.devices else devices, [10], 1
    space = NB201Space()
    archs = space.enumerate()
    feats = arch_features(archs)  # op counts, then their dead part
    flops = np.array([space.flops(a) for a in archs], dtype=float)
    connected = np.array([i for i, a in enumerate(archs) if a.connected])

    methods = ["additive", "additive_counts", "transfer", "flops", "ridge"]
    records: list[dict] = []
    summary: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for protocol in ("loose", "strict"):
        for device in devices:
            y = table.column(device)
            left_out = (device,) if protocol == "loose" else table.related(device)
            ref = table.matrix(exclude=left_out)
            runs = [(m, n) for n in samples for m in methods]
            runs += [(m, 10) for m in ("ridge_help10", "additive_help10") if 10 in samples]
            for method, n in runs:
                fixed = method.endswith("help10")
                per_seed = []
                for seed in range(1 if fixed else seeds):
                    rows, pred = run_method(method, n, seed, y, ref, feats, flops, connected)
                    held = np.ones(len(y), dtype=bool)
                    held[rows] = False
                    per_seed.append(scores(pred[held], y[held]))
                figs = {k: float(np.mean([s[k] for s in per_seed])) for k, _ in FIGURES}
                summary.setdefault((protocol, method, n), []).append(figs)
                config = {"method": method, "n_samples": n, "protocol": protocol,
                          "seeds": len(per_seed), "reference": list(table.reference_devices(left_out))}
                for figure, unit in FIGURES:
                    emit(records, BENCH, figure, figs[figure], unit, device, config)
            if protocol == "loose" and not args.smoke:  # the ceiling does not use references
                for ceiling, base in (("ceiling_additive", "additive"), ("ceiling_counts", "additive_counts")):
                    X = feats if base == "additive" else feats[:, : feats.shape[1] // 2]
                    reg = make_method(base, 0, feats.shape[1]).fit(X[connected], y[connected])
                    figs = scores(reg.predict(X), y)
                    summary.setdefault((protocol, ceiling, len(connected)), []).append(figs)
                    for figure, unit in FIGURES:
                        emit(records, BENCH, figure, figs[figure], unit, device,
                             {"method": ceiling, "n_samples": len(connected), "protocol": protocol})
    for (protocol, method, n), rows in summary.items():
        config = {"method": method, "n_samples": n, "protocol": protocol, "devices": len(rows)}
        for figure, unit in FIGURES:
            emit(records, BENCH, figure, float(np.mean([r[figure] for r in rows])), unit, "mean", config)
    if args.out or not args.smoke:
        path = write_results(records, BENCH, args.out)
        print(f"wrote {len(records)} figures to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
