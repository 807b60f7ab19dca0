"""How `edgenas devices import` scales with the rows of the CSV: 1k, 10k and 100k ``mbv3`` rows.

For each size a CSV is generated (``mbv3`` small-preset archs sampled with
``random.Random(i)``, latency proportional to FLOPs plus 5 % noise; generation not timed)
and imported into a fresh workspace the way the command does it: read and validate the
CSV, then ``import_device`` (cross-validate, store, save). Figures per size: seconds for
each stage and in all, and microseconds per row (flat when the import is linear).

Side by side on the same rows, up to ``--baseline-max`` rows: storing them one
transaction per row (what the import did before) against one transaction
(``MeasurementStore.add_many``), as a ratio. (The other fix, cross-validating at most
``CV_MAX_ROWS`` rows, makes that stage constant above 2,000 rows; before it, 10k rows took
about 500 s of cross-validation and 100k did not finish.)

    python experiments/bench/import_scaling.py             # 1k, 10k, 100k rows
    python experiments/bench/import_scaling.py --smoke     # 300 rows, CV on 100 of them

The machine's load average goes into each figure's config: on a shared 2-core machine the
wall times move with it.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import device_name, emit, write_results  # noqa: E402

BENCH = "import_scaling"


def write_csv(path: Path, n: int, seed: int = 0) -> int:
    """``n`` distinct small-preset mbv3 archs with FLOPs-proportional latency and 5 % noise."""
    from search_spaces import get_space

    space = get_space("mbv3", preset="small")
    noise = random.Random(seed)
    seen: set[str] = set()
    i = 0
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch", "latency_ms"])
        while len(seen) < n:
            arch = space.sample(random.Random(seed * 10_000_019 + i))
            i += 1
            key = space.arch_key(arch)
            if key in seen:
                continue
            seen.add(key)
            writer.writerow([key, round((0.5 + space.flops(arch) / 4e6) * noise.uniform(0.95, 1.05), 5)])
    return len(seen)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="one tiny size (CI)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--baseline-max", type=int, default=10_000,
                        help="largest size at which one-transaction-per-row storing is timed too")
    parser.add_argument("--cv-max-rows", type=int, default=None, help="default: CV_MAX_ROWS")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.baseline_max, args.cv_max_rows = [300], 300, 100

    from latency_predictors.csv_import import read_measurements_csv
    from latency_predictors.device_import import CV_MAX_ROWS, import_device
    from latency_predictors.measurements import Measurement, MeasurementStore
    from search_spaces import get_space

    cv_max_rows = args.cv_max_rows or CV_MAX_ROWS
    space = get_space("mbv3", preset="small")
    device = device_name("cpu")
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgenas-import-bench-") as tmp:
        for n in args.sizes:
            base = Path(tmp) / str(n)
            base.mkdir()
            data = base / "m.csv"
            write_csv(data, n)
            config = {"rows": n, "space": "mbv3/small", "cv_max_rows": cv_max_rows,
                      "load_avg_1m": round(os.getloadavg()[0], 2)}  # fmt: skip

            start = time.perf_counter()
            rows = read_measurements_csv(data, space, progress=False)
            read_s = time.perf_counter() - start
            store = MeasurementStore(f"sqlite:///{base / 'measurements.db'}")
            start = time.perf_counter()
            profile = import_device("bench", space, rows, store, base / "profiles", str(data), progress=False,
                                    cv_max_rows=cv_max_rows)  # fmt: skip
            import_s = time.perf_counter() - start
            total = read_s + import_s
            emit(records, BENCH, "read_s", round(read_s, 3), "s", device, config)
            emit(records, BENCH, "import_s", round(import_s, 3), "s", device, config)
            emit(records, BENCH, "total_s", round(total, 3), "s", device, config)
            emit(records, BENCH, "us_per_row", round(1e6 * total / n, 1), "us", device, config)
            figures = profile.validation[profile.predictor]
            emit(records, BENCH, "cv_within_10pct", figures.get("within_10pct"), "fraction", device,
                 {**config, "how": figures.get("how")})  # fmt: skip

            if n <= args.baseline_max:
                ms = [Measurement(device="b", space=space.name, role="import", item=space.arch_key(r.arch),
                                  backend="import", schedule="external", target={}, tvm_version="n/a",
                                  input_shape=(3, 32, 32), number=1, repeat=1, median_ms=r.latency_ms,
                                  spread_ms=0.0) for r in rows]  # fmt: skip
                per_row = MeasurementStore(f"sqlite:///{base / 'per_row.db'}")
                start = time.perf_counter()
                for m in ms:
                    per_row.add(m)
                per_row_s = time.perf_counter() - start
                batched = MeasurementStore(f"sqlite:///{base / 'batched.db'}")
                start = time.perf_counter()
                batched.add_many(ms)
                batched_s = time.perf_counter() - start
                emit(records, BENCH, "store_per_row_transaction_s", round(per_row_s, 3), "s", device, config)
                emit(records, BENCH, "store_one_transaction_s", round(batched_s, 3), "s", device, config)
                emit(records, BENCH, "store_speedup", round(per_row_s / max(batched_s, 1e-9), 1), "x", device,
                     config)  # fmt: skip
    if args.out or not args.smoke:
        write_results(records, BENCH, args.out)
    return records


if __name__ == "__main__":
    main()
