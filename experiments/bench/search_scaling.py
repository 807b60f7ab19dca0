"""Search throughput with 1 and 2 workers: PostgreSQL (one ``edgenas search`` process per
worker on one study) and Ray Tune (a local head, 1 and 2 concurrent trials), on this machine.

The problem is cheap on purpose, so that what is measured is the engine and the storage:
``--space nb201 --device table:pixel3 --max-latency-ms 4`` (accuracy from the table,
latency measured, NSGA-II). Every worker is a real ``python -m nas.cli search`` process;
PostgreSQL is a throw-away loopback server (``scripts/postgres_local.sh``, as the tests
start it), Ray a head started here (``ray start --head --block`` on 127.0.0.1, stopped by
its process group at the end) that also holds the study in the same PostgreSQL.

Two figures per run: ``trials_per_s`` in steady state (complete trials over the span from
the first trial's start to the last one's end, from the study's own timestamps) and
``wall_trials_per_s`` (from launching the processes to their exit: Python start-up,
study creation and, for Ray, connecting and Tune's set-up included).

    python experiments/bench/search_scaling.py            # 400 trials (Ray: 60) per run
    python experiments/bench/search_scaling.py --smoke    # 40 trials (Ray: 6)

This machine has 2 cores shared with other processes: the server, the workers and Ray all
compete for them, and timings are noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import device_name, emit, write_results  # noqa: E402

BENCH = "search_scaling"
ROOT = Path(__file__).resolve().parents[2]
PROBLEM = ["--space", "nb201", "--device", "table:pixel3", "--max-latency-ms", "4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    # Ray 2.60 turns token auth on when ~/.ray/auth_token exists; on this shared machine the
    # driver was refused by its own loopback head ("InvalidAuthToken"), so it is off here.
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}


def search(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli", "search", *PROBLEM, *args]


def start_postgres(base: Path) -> str:
    base.chmod(0o755)  # the server runs as the postgres user when this runs as root
    out = subprocess.run(["bash", str(ROOT / "scripts" / "postgres_local.sh"), "start", str(base / "data"),
                          str(free_port())], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"PostgreSQL did not start (run scripts/postgres_local.sh install): {out.stderr.strip()}")
    return out.stdout.strip().splitlines()[-1]


def stop_postgres(base: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "postgres_local.sh"), "stop", str(base / "data")],
                   capture_output=True, timeout=60)


def start_ray(cpus: int) -> tuple[subprocess.Popen, str]:
    """``ray start --head --block`` in its own session; returns the process and the address."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={port}", f"--num-cpus={cpus}",
         "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats"],
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    end = time.monotonic() + 180
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(3)  # the GCS answers before the raylet has registered
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("ray start --head exited early") from None
            time.sleep(0.5)
    raise SystemExit("ray head did not come up in 180 s")


def stop_ray(proc: subprocess.Popen) -> None:
    """Stop the head and everything it started (its session), by process group and session id."""
    sid = os.getsid(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            continue
    # Ray's own processes may have left the process group but not the session.
    for pid in _session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid and int(entry.name) != os.getpid():
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def measure(url: str, study: str, procs: list[subprocess.Popen], t0: float) -> dict[str, Any]:
    errors = []
    for p in procs:
        _, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            errors.append(err[-1500:])
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit("a worker failed:\n" + "\n".join(errors))
    import optuna

    from latency_predictors.database import database_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=study, storage=database_url(url)).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    workers = {str(t.system_attrs.get("edgenas_worker", {}).get("pid") or t.system_attrs.get("edgenas_buffered_by"))
               for t in trials}
    return {"trials": len(trials), "span_s": span, "wall_s": wall, "trials_per_s": len(trials) / span,
            "wall_trials_per_s": len(trials) / wall, "writers": len(workers)}


def run_postgres(url: str, ws: Path, workers: int, trials: int, buffered: bool) -> dict[str, Any]:
    study = f"pg-{workers}-{'buf' if buffered else 'std'}-{int(time.time())}"
    extra = ["--buffered"] if buffered else []
    t0 = time.perf_counter()
    procs = [subprocess.Popen(search("--trials", str(trials), "--storage", url, "--study", study,
                                     "--workspace", str(ws), "--seed", str(i), *extra),
                              env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    return measure(url, study, procs, t0)


def run_ray(url: str, ws: Path, address: str, concurrency: int, trials: int) -> dict[str, Any]:
    study = f"ray-{concurrency}-{int(time.time())}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(search("--trials", str(trials), "--storage", url, "--study", study,
                                   "--workspace", str(ws), "--engine", "ray", "--ray-address", address,
                                   "--ray-cpus", "1", "--ray-concurrency", str(concurrency)),
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return measure(url, study, [proc], t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CI size: 40 trials per run, Ray 6")
    parser.add_argument("--trials", type=int, default=400, help="trials per PostgreSQL run")
    parser.add_argument("--ray-trials", type=int, default=60, help="trials per Ray run")
    parser.add_argument("--engines", default="postgres,ray", help="comma list: postgres, ray")
    parser.add_argument("--out")
    args = parser.parse_args()
    trials = 40 if args.smoke else args.trials
    ray_trials = 6 if args.smoke else args.ray_trials
    cpu = device_name("cpu")
    config = {"problem": " ".join(PROBLEM), "sampler": "nsga2", "machine": "2 shared cores: noisy",
              "workers": "separate `python -m nas.cli search` processes, OMP_NUM_THREADS=1"}
    records: list[dict] = []
    rows: dict[str, dict[str, Any]] = {}
    base = Path(tempfile.mkdtemp(prefix="edgenas-pg-", dir="/tmp"))
    ray_proc = None
    try:
        url = start_postgres(base)
        ws = base / "ws"
        engines = set(args.engines.split(","))
        for buffered in (False, True) if "postgres" in engines else ():
            for n in (1, 2):
                key = f"postgres_{'buffered_' if buffered else ''}{n}w"
                rows[key] = run_postgres(url, ws, n, trials, buffered)
                print(key, rows[key], file=sys.stderr, flush=True)
        if "ray" in engines:
            ray_proc, address = start_ray(2)
            for n in (1, 2):
                key = f"ray_{n}c"
                rows[key] = run_ray(url, ws, address, n, ray_trials)
                print(key, rows[key], file=sys.stderr, flush=True)
    finally:
        if ray_proc is not None:
            stop_ray(ray_proc)
        stop_postgres(base)
        shutil.rmtree(base, ignore_errors=True)
    for key, r in rows.items():
        engine = "ray" if key.startswith("ray") else "local --buffered" if "buffered" in key else "local (default)"
        c = {**config, "engine": engine, "storage": "PostgreSQL 15 on loopback", "trials": r["trials"],
             "span_s": round(r["span_s"], 2), "wall_s": round(r["wall_s"], 2), "writers": r["writers"]}
        if key.startswith("ray"):
            c.update(ray="local head, --num-cpus=2, --ray-cpus 1", concurrency=int(key[4]))
        emit(records, BENCH, f"{key}_trials_per_s", round(r["trials_per_s"], 2), "trials/s", cpu, c)
        emit(records, BENCH, f"{key}_wall_trials_per_s", round(r["wall_trials_per_s"], 2), "trials/s", cpu, c)
    for prefix in ("postgres", "postgres_buffered", "ray"):
        one, two = (f"{prefix}_1c", f"{prefix}_2c") if prefix == "ray" else (f"{prefix}_1w", f"{prefix}_2w")
        if one in rows and two in rows:
            emit(records, BENCH, f"{prefix}_speedup_2_over_1", round(rows[two]["trials_per_s"] / rows[one]["trials_per_s"], 3),
                 "ratio", cpu, {**config, "from": "steady-state trials/s"})
    if args.out or not args.smoke:
        write_results(records, BENCH, args.out)


if __name__ == "__main__":
    main()
