"""``edgenas search`` with the local engine on nb201: results, bad input, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import env, search_cmd, wait_for
from search_helpers import complete, count_complete, load

from latency_predictors.nb201_table import load_nb201_latency
from nas.cli import main
from nas.tabular import load_nb201_accuracy

DEVICE = "table:pixel3"


def _args(ws: Path, *extra: str) -> list[str]:
    return ["search", "--space", "nb201", "--device", DEVICE, "--workspace", str(ws), *extra]


def _url(ws: Path) -> str:
    return f"sqlite:///{ws / 'studies.db'}"


def test_search_result_is_feasible_front_with_most_accurate_recommended(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert main(_args(tmp_path, "--max-latency-ms", "4", "--trials", "80", "--buffered",
                      "--study", "s", "--out", str(out))) == 0
    result = json.loads(out.read_text())
    study = load(_url(tmp_path), "s")
    trials = complete(study)
    assert len(trials) == 80 and result["trials"]["complete"] == 80
    feasible = [t for t in trials if all(c <= 0 for c in t.constraints.values())]
    assert feasible and result["trials"]["feasible"] == len(feasible)
    latency = load_nb201_latency().column("pixel3")
    valid = load_nb201_accuracy().accuracy("cifar100", "valid")
    for t in feasible:  # a constraint is the relative excess over the budget
        ops = t.user_attrs["arch"]["ops"]
        index = next(i for i, c in enumerate(load_nb201_accuracy().cellstrs) if _ops(c) == ops)
        assert latency[index] <= 4.0
        assert t.values[0] == pytest.approx(valid[index])
    rec = result["recommended"]
    assert rec["accuracy"] == max(t.values[0] for t in feasible)
    assert rec["predicted"][f"latency_ms@{DEVICE}"] <= 4.0 and rec["feasible"]
    front = [(r["accuracy"], r["predicted"][f"latency_ms@{DEVICE}"]) for r in result["pareto_front"]]
    for a, lat in front:  # no member of the front is dominated by a feasible trial
        assert not any(t.values[0] >= a and t.values[1] <= lat and (t.values[0], t.values[1]) != (a, lat)
                       for t in feasible)


def _ops(cellstr: str) -> list[str]:
    return [tok.split("~")[0] for tok in cellstr.replace("+", "").split("|") if tok]


@pytest.mark.slow  # two searches, ~4-6 s
def test_seeded_search_is_reproducible_and_modes_agree(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_args(a, "--max-latency-ms", "4", "--trials", "30", "--study", "s", "--seed", "3",
                      "--no-buffered")) == 0
    assert main(_args(b, "--max-latency-ms", "4", "--trials", "30", "--study", "s", "--seed", "3",
                      "--buffered")) == 0
    params = [[t.params for t in complete(load(_url(d), "s"))] for d in (a, b)]
    assert params[0] == params[1]


def test_infeasible_budget_is_answered_at_once_with_exact_cheapest(tmp_path: Path, capsys) -> None:
    cheapest = float(load_nb201_latency().column("pixel3").min())
    assert main(_args(tmp_path, "--max-latency-ms", str(cheapest * 0.5), "--trials", "10")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "infeasible" in err
    assert f"{cheapest:.4g}" in err and "exact over all 15,625 archs" in err
    if (tmp_path / "studies.db").exists():  # refused before any trial ran, in any study
        import optuna

        assert [s.n_trials for s in optuna.get_all_study_summaries(storage=_url(tmp_path))] in ([], [0])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--max-latency-ms", "0.004s"], "plain number in milliseconds"),
        (["--max-latency-ms", "-3"], "positive number"),
        (["--device", "nosuchdevice", "--max-latency-ms", "5"], "edgenas devices import nosuchdevice"),
        (["--device", "table:nosuch", "--max-latency-ms", "5"], "table:NAME"),
        (["--max-latency-ms", "5", "--storage", "postgresql://u@127.0.0.1:9/x"], "cannot reach the study database"),
        (["--max-latency-ms", "5", "--storage", "redis://x"], "not supported"),
        (["--max-latency-ms", "5", "--checkpoint", "/nonexistent"], "no checkpoint"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, capsys, extra: list[str], needle: str) -> None:
    args = ["search", "--space", "nb201", "--workspace", str(tmp_path), "--trials", "5"]
    if "--device" not in extra:
        args += ["--device", DEVICE]
    try:
        code = main(args + extra)
    except SystemExit as exc:  # argparse type errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert needle in err[-1]


def test_unknown_space(tmp_path: Path, capsys) -> None:
    assert main(["search", "--space", "nope", "--device", "x", "--workspace", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_study_of_another_search_is_refused_and_left_intact(tmp_path: Path, capsys) -> None:
    assert main(_args(tmp_path, "--max-latency-ms", "4", "--trials", "20", "--study", "s", "--buffered")) == 0
    before = [(t.number, t.values) for t in complete(load(_url(tmp_path), "s"))]
    assert main(_args(tmp_path, "--max-latency-ms", "6", "--trials", "40", "--study", "s")) == 2
    assert "different search" in capsys.readouterr().err
    assert main(["search", "--space", "nb201", "--device", "table:gold_6240", "--max-latency-ms", "4",
                 "--trials", "40", "--study", "s", "--workspace", str(tmp_path)]) == 2
    assert [(t.number, t.values) for t in complete(load(_url(tmp_path), "s"))] == before


@pytest.mark.slow  # search subprocesses killed and resumed
@pytest.mark.parametrize(("mode", "trials"), [(["--no-buffered"], 150), ([], 3000)])
def test_kill_9_then_resume_loses_and_repeats_nothing(tmp_path: Path, mode: list[str], trials: int) -> None:
    """The buffered engine writes a batch per transaction, so it gets more trials: the
    kill must land while it runs."""
    cmd = search_cmd("--space", "nb201", "--device", DEVICE, "--max-latency-ms", "4", "--trials", str(trials),
                     "--study", "s", "--workspace", str(tmp_path), "--sampler", "random", *mode)
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: count_complete(_url(tmp_path), "s") >= 15, 120, "15 trials")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: (t.params, t.values) for t in complete(load(_url(tmp_path), "s"))}
    assert 15 <= len(before) < trials
    subprocess.run(cmd, env=env(), check=True, capture_output=True, timeout=300)
    after = complete(load(_url(tmp_path), "s"))
    assert len(after) == trials and len({t.number for t in after}) == trials
    assert {t.number: (t.params, t.values) for t in after if t.number in before} == before


@pytest.mark.slow  # a worker subprocess killed mid-trial
@pytest.mark.parametrize("mode", [["--no-buffered"], []])
def test_a_dead_workers_running_trial_is_retried(tmp_path: Path, mode: list[str]) -> None:
    """A real worker process takes a trial and is killed with SIGKILL while it runs it; the
    next run (per-trial or the default buffered mode) fails it and runs its arch again."""
    assert main(_args(tmp_path, "--max-latency-ms", "4", "--trials", "5", "--study", "s")) == 0
    holder = textwrap.dedent(f"""
        import sys, time
        from nas.search.storage import open_storage, parse_storage
        from nas.workspace import Workspace
        from nas.search.study import mark_worker, worker_identity
        import optuna
        from search_spaces import get_space
        from pathlib import Path
        spec = parse_storage(None, Workspace(Path({str(tmp_path)!r})).studies_url)
        study = optuna.load_study(study_name="s", storage=open_storage(spec))
        trial = study.ask()
        mark_worker(study, trial, worker_identity())
        get_space("nb201").suggest(trial)
        print(trial.number, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], env=env(), stdout=subprocess.PIPE, text=True)
    number = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    study = load(_url(tmp_path), "s")
    dead = study.trials[number]
    assert dead.state.name == "RUNNING"
    assert main(_args(tmp_path, "--max-latency-ms", "4", "--trials", "8", "--study", "s", *mode)) == 0
    study = load(_url(tmp_path), "s")
    assert study.trials[number].state.name == "FAIL"
    assert not [t for t in study.trials if t.state.name in ("WAITING", "RUNNING")]
    retried = [t for t in complete(study) if t.system_attrs.get("failed_trial") == number]
    assert len(retried) == 1 and retried[0].params == dead.params
    assert len(complete(study)) == 8


def test_quick_cheapest_search_on_mbv3_finds_the_minimum_flops() -> None:
    """Coordinate descent (the non-enumerable path) against a known minimum: FLOPs."""
    from nas.search.feasibility import cheapest
    from nas.search.objectives import Budget
    from nas.search.problem import SearchProblem, SearchSpec
    from search_spaces import get_space

    space = get_space("mbv3", preset="small")

    class NoAccuracy:
        def describe(self) -> dict:
            return {}

    spec = SearchSpec("mbv3", {"preset": "small"}, (), Budget(max_mflops=1.0), objectives=("accuracy",))
    problem = SearchProblem(spec, space, NoAccuracy(), [])
    found = cheapest(problem, "mflops")
    flops = [space.flops(space.sample()) / 1e6 for _ in range(200)]
    assert found.value == pytest.approx(space.flops(space.smallest()) / 1e6)
    assert found.value <= min(flops) and "quick search" in found.method
    assert np.isfinite(found.value)
