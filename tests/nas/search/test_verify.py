"""Device in the loop (``search --verify``): what is measured, stored and recommended, and the
refusals. The device's truth is NAS-Bench-201's measured latency table (a few-shot imported
device predicts it; a "measurement" reads the table)."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from nas.search import Budget, SearchSettings, SearchSpec
from nas.search.runner import auto_margin, prepare, run_search
from nas.search.verify import MIN_CHANCE, Measured, StoredDevice, choose_batch, verify_search
from nas.workspace import Workspace

DEVICE = "pixel3"


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    from latency_predictors.nb201_table import load_nb201_latency

    try:
        return load_nb201_latency().column(DEVICE)
    except FileNotFoundError:
        pytest.skip("NAS-Bench-201 data not present")


def _import(ws: Path, truth: np.ndarray, n: int = 10) -> None:
    rows = [[i, truth[i]] for i in np.random.default_rng(0).choice(len(truth), n, replace=False)]
    path = ws / "m.csv"
    ws.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["arch", "latency_ms"], *rows])
    assert main(["devices", "import", DEVICE, "--space", "nb201", "--measurements", str(path),
                 "--workspace", str(ws), "--quiet"]) == 0


def _searched(ws: Path, budget: float, trials: int = 80):  # type: ignore[no-untyped-def]
    spec = SearchSpec("nb201", {}, (DEVICE,), Budget(max_latency_ms=budget), workspace=str(ws))
    problem = prepare(spec, "verify")
    _result, study = run_search(problem, SearchSettings(trials=trials, buffered=True), quiet=True)
    from optuna.trial import TrialState

    return problem, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _loop(ws: Path, problem, truth: np.ndarray, scale: float = 1.0) -> StoredDevice:  # type: ignore[no-untyped-def]
    return StoredDevice(Workspace(ws), DEVICE, problem.space, lambda a: Measured(float(truth[a.index]) * scale))


@pytest.mark.slow  # an import, a search and refits: ~10-20 s
def test_measures_at_most_k_stores_them_and_recommends_a_measured_fit(tmp_path: Path, truth: np.ndarray) -> None:
    budget = float(np.percentile(truth, 50))
    _import(tmp_path, truth)
    problem, trials = _searched(tmp_path, budget)
    assert problem.spec.budget.safety_margin < 0  # a verified search explores over the budget
    loop = _loop(tmp_path, problem, truth)
    out = verify_search(problem, trials, {DEVICE: loop}, 3, auto_margin(problem.devices))
    assert 1 <= out.measurements <= 3 and len(out.records) == out.measurements
    keys = [problem.space.arch_key(problem.space.arch_from_json(r["arch"])) for r in out.records]
    assert len(set(keys)) == len(keys)  # nothing measured twice
    for r in out.records:
        index = problem.space.arch_from_json(r["arch"]).index
        assert r["measured"][f"latency_ms@{DEVICE}"] == pytest.approx(truth[index])
        assert r["fits"] == (truth[index] <= budget)
    stored = Workspace(tmp_path).measurements().query(DEVICE, role="verify")
    assert sorted(m.item for m in stored) == sorted(keys)
    if out.verified:  # the most accurate arch measured to fit, and it truly fits
        index = problem.space.arch_from_json(out.recommended.user_attrs["arch"]).index
        assert truth[index] <= budget
        assert out.recommended.values[0] == max(r["accuracy"] for r in out.records if r["fits"])
    again = verify_search(problem, trials, {DEVICE: _loop(tmp_path, problem, truth)}, 3, auto_margin(problem.devices))
    assert not set(keys) & {problem.space.arch_key(problem.space.arch_from_json(r["arch"])) for r in again.records}


@pytest.mark.slow  # an import, a search and refits: ~10 s
def test_a_device_far_slower_than_predicted_leaves_the_pick_unverified(tmp_path: Path, truth: np.ndarray) -> None:
    """20 times slower than its import said: no arch of the study can fit. (At 3 times, the
    refitted predictor steers the last measurement to an arch that does fit.)"""
    budget = float(np.percentile(truth, 50))
    _import(tmp_path, truth)
    problem, trials = _searched(tmp_path, budget, trials=60)
    out = verify_search(problem, trials, {DEVICE: _loop(tmp_path, problem, truth, scale=20.0)}, 3,
                        auto_margin(problem.devices))
    assert 1 <= out.measurements <= 3 and not any(r["fits"] for r in out.records)
    assert not out.verified and out.status == "none-fits" and "none of the" in out.message


def test_choose_batch_skips_measured_and_hopeless_archs() -> None:
    acc = np.array([70.0, 69.0, 68.0, 60.0, 75.0, 50.0])
    chance = np.array([0.5, 0.6, 0.99, 1.0, 0.001, 0.3])
    skip = np.array([False, True, False, False, False, False])
    picks = choose_batch(acc, chance, 4, skip)
    assert 1 not in picks and 4 not in picks and len(set(picks)) == len(picks) <= 4
    assert picks[0] == 0  # the largest expected gain over the safe 68: (70 - 68) x 0.5
    filled = choose_batch(acc, chance, 4, skip, fill=True)  # then the uncertain ones: not 3 (sure to fit)
    assert sorted(filled) == [0, 2, 5] and all(chance[i] >= MIN_CHANCE and not skip[i] for i in filled)


def test_verify_refusals_are_one_line_exit_2(tmp_path: Path, truth: np.ndarray, capsys) -> None:
    _import(tmp_path, truth, n=3)
    base = ["search", "--space", "nb201", "--trials", "5", "--verify", "2", "--workspace", str(tmp_path)]
    cases = [
        (["--device", DEVICE, "--max-latency-ms", "9"], "devices suggest"),
        (["--device", "table:pixel3", "--max-latency-ms", "9"], "measured table"),
        (["--device", DEVICE, "--max-params-m", "1"], "--max-latency-ms"),
    ]
    for extra, needle in cases:
        capsys.readouterr()
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # imports TVM and fits a whole-network predictor: ~10 s
def test_unreachable_rpc_device_writes_an_unverified_result_and_exits_1(tmp_path: Path, truth: np.ndarray,
                                                                      capsys) -> None:
    """A board profiled over RPC whose server is gone: the search runs, its result is
    written with predicted costs, marked unverified, and one line says why (exit 1)."""
    from latency_predictors.device_profile import DeviceProfile
    from latency_predictors.measurements import Measurement
    from search_spaces import get_space

    space = get_space("nb201")
    ws = Workspace(tmp_path)
    address = f"127.0.0.1:{_free_port()}"
    archs = [space.enumerate()[i] for i in np.random.default_rng(1).choice(15625, 14, replace=False)]
    ws.measurements().add_many([
        Measurement(device="board", space="nb201", role="train", item=space.arch_key(a), backend="tvm",
                    schedule="untuned", target={"kind": "llvm"}, tvm_version="x", input_shape=(3, 32, 32),
                    number=1, repeat=1, median_ms=float(truth[a.index]), spread_ms=0.0)
        for a in archs])
    DeviceProfile(name="board", space=space.describe(), target={"kind": "llvm", "num-cores": 1},
                  reached={"kind": "rpc", "address": address}, predictor="whole_network",
                  predictor_params={"random_state": 0}, validation={"whole_network": {"mape_pct": 6.0}},
                  counts={"train": 14}).save(ws.profile_path("board"))
    out = tmp_path / "r.json"
    code = main(["search", "--space", "nb201", "--device", "board", "--max-latency-ms",
                 str(float(np.percentile(truth, 60))), "--trials", "30", "--verify", "2", "--out", str(out),
                 "--workspace", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "cannot reach" in err[0] and address in err[0] and "unverified" in err[0]
    result = json.loads(out.read_text())
    assert result["verification"]["status"] == "unreachable" and result["verified"] == []
    assert result["recommended"]["verified"] is False and "UNVERIFIED" in result["costs_are"]
    assert not ws.measurements().query("board", role="verify")



def test_two_verification_rounds_merge_into_one_result():
    from nas.search.runner import merge_verifications

    def rec(trial, predicted, measured):
        return {"trial": trial, "arch": [trial], "predicted": {"latency_ms@d": predicted},
                "measured": {"latency_ms@d": measured}}

    first = {"verification": {"measurements": 2, "requested": 3, "status": "verified"},
             "verified": [rec(1, 10.0, 7.5), rec(2, 12.0, 9.0)]}
    second = {"verification": {"measurements": 1, "requested": 3, "status": "verified"},
              "verified": [rec(7, 9.0, 8.9)], "recommended": {"arch": [7]}}
    merged = merge_verifications(first, second, 5)
    assert merged["verification"]["measurements"] == 3 and merged["verification"]["requested"] == 5
    assert [r["trial"] for r in merged["verified"]] == [1, 2, 7]
    assert merged["recommended"] == {"arch": [7]}


def test_edge_bias_is_the_shrunk_mean_log_error_of_what_was_measured():
    import math

    import numpy as np

    from nas.search.verify import PRIOR_WEIGHT, edge_bias

    pred = np.array([10.0, 20.0, 30.0])
    assert edge_bias(pred, [None, None, None]) == 0.0
    got = edge_bias(pred, [8.0, None, 24.0])  # both 20 % under the prediction
    assert math.isclose(got, 2 * math.log(0.8) / (2 + PRIOR_WEIGHT))
    assert edge_bias(pred, [12.0, 24.0, 36.0]) > 0  # under-predicted: the edge is lower than predicted


def test_measurements_are_spent_while_a_more_accurate_candidate_is_left():
    """A candidate the predictor gives almost no chance is still measured when it is the
    only way to beat the incumbent (the chances compare in logs, below any float's
    resolution too); nothing is measured once no unmeasured arch is more accurate."""
    from nas.search.verify import _choose

    acc = np.array([70.0, 66.0, 55.0, 60.0])
    log_chance = np.array([-900.0, -800.0, 0.0, 0.0])
    done = [False, False, False, True]
    assert _choose(acc, log_chance, 60.0, done, last=False) == 1  # 6 points x e^-800 beats 10 x e^-900
    assert _choose(acc, np.array([-8.0, -800.0, 0.0, 0.0]), 60.0, done, last=False) == 0
    assert _choose(acc, log_chance, 60.0, [True, True, False, True], last=False) is None
    # no incumbent: the last measurement goes to the best safe arch, so something is verified
    assert _choose(acc, np.array([-1.0, -1.0, np.log(0.99), np.log(0.5)]), None, [False] * 4, last=True) == 2


def test_an_accuracy_level_measured_over_the_budget_waits_for_the_untried_levels():
    """Candidates of equal accuracy are one bet (an evaluator that scores them alike sees one
    network): once a member is measured over the budget, the next measurement goes to a
    likely-enough candidate of another level, and back to the level only when none is left."""
    from nas.search.verify import _choose

    acc = np.array([60.0, 60.0, 58.0, 55.0])
    log_chance = np.log(np.array([0.6, 0.6, 0.5, 0.99]))
    done = [True, False, False, False]  # arch 0 (level 60) was measured and did not fit
    tried = [True, True, False, False]
    assert _choose(acc, log_chance, 55.0, done, last=False) == 1  # without the levels: the same bet again
    assert _choose(acc, log_chance, 55.0, done, last=False, tried=tried) == 2
    hopeless = np.log(np.array([0.6, 0.6, 0.001, 0.99]))  # the other level is below MIN_CHANCE
    assert _choose(acc, hopeless, 55.0, done, last=False, tried=tried) == 1
    assert _choose(acc, log_chance, 55.0, [True, True, True, False], last=False, tried=tried) is None


def test_the_second_search_looks_further_over_the_budget_the_worse_the_predictor_did():
    """The second round's margin: the bias at the edge less two re-estimated errors, so a
    predictor that over-predicted by 20 % makes the second search explore higher than one
    that hit, and one that under-predicted less high than that."""
    from types import SimpleNamespace

    from nas.search.runner import edge_margin
    from nas.search.verify import MAX_EDGE_BAND, posterior_error

    class Device:
        name, latency_error = "d", 0.05

        def predict_latency_ms(self, archs):  # type: ignore[no-untyped-def]
            return [float(a) for a in archs]

    problem = SimpleNamespace(devices=[Device()], space=SimpleNamespace(arch_from_json=float))

    def first(pairs):  # type: ignore[no-untyped-def]
        return {"verified": [{"arch": p, "predicted": {"latency_ms@d": p}, "measured": {"latency_ms@d": m}}
                             for p, m in pairs]}

    hit = edge_margin(problem, first([(10.0, 10.0), (12.0, 12.0)]))
    over = edge_margin(problem, first([(10.0, 8.0), (12.0, 9.6)]))  # the device is 20 % faster
    under = edge_margin(problem, first([(10.0, 12.0), (12.0, 14.4)]))  # 20 % slower
    assert -MAX_EDGE_BAND <= over < hit < 0 and under > over
    import math

    assert hit == round(math.exp(-2 * posterior_error(0.05, [(10.0, 10.0), (12.0, 12.0)])) - 1, 4)
    assert posterior_error(0.05, [(10.0, 8.0)]) > posterior_error(0.05, [(10.0, 10.0)])



@pytest.mark.slow  # an import, two searches and refits: ~20-30 s
def test_search_verify_spends_its_measurements_over_both_searches_and_stores_each_with_its_study(
        tmp_path: Path, truth: np.ndarray) -> None:
    """``search(..., verify=5)`` end to end (the table stands in for the device): at most 5
    measurements, the recommendation measured to fit and truly fitting, and every
    measurement stored with the study its trial belongs to (the second round's candidates
    include the first search's trials, whose numbers are that study's)."""
    import optuna

    from nas.search.runner import search

    budget = float(np.percentile(truth, 40))
    _import(tmp_path, truth)
    spec = SearchSpec("nb201", {}, (DEVICE,), Budget(max_latency_ms=budget), workspace=str(tmp_path))
    space = prepare(spec, "verify").space
    loops = {DEVICE: StoredDevice(Workspace(tmp_path), DEVICE, space, lambda a: Measured(float(truth[a.index])))}
    result, study2 = search(spec, SearchSettings(trials=60, buffered=True, verify=5, study="v"), quiet=True,
                            loops=loops)
    check = result["verification"]
    assert 1 <= check["measurements"] <= 5 and len(result["verified"]) == check["measurements"]
    rec = result["recommended"]
    assert rec["verified"] and truth[space.arch_from_json(rec["arch"]).index] <= budget
    storage = Workspace(tmp_path).studies_url
    for r in result["verified"]:
        owner = optuna.load_study(study_name=r["study"], storage=storage)
        stored = owner.user_attrs[f"edgenas_measured:{r['trial']}"]
        assert stored["arch"] == r["arch"]
        trial = owner.trials[r["trial"]]
        assert trial.user_attrs["arch"] == r["arch"]  # the number is that study's trial
    assert rec["study"] in {study2.study_name} | {r["study"] for r in result["verified"]}
    if check["measurements"] < 5:  # stopped early: nothing unmeasured is more accurate than the pick
        assert check["status"] == "verified"
    # the second search learned from the first's accuracies and evaluated none of its archs again
    archs = {name: {json.dumps(t.user_attrs["arch"], sort_keys=True)
                    for t in optuna.load_study(study_name=name, storage=storage).trials}
             for name in ("v", "v-refit")}
    assert len(archs["v-refit"]) == 60 and not archs["v"] & archs["v-refit"]


def test_a_whole_millisecond_device_fits_readings_at_the_budget():
    """A device that reports whole milliseconds: a reading at the budget fits, so an arch
    predicted exactly at the budget is more likely than not to fit (continuous readings:
    even odds)."""
    from types import SimpleNamespace

    from nas.search.verify import reading_step

    assert reading_step([3.0, 12.0, 7.0]) == 1.0
    assert reading_step([3.0, 12.5, 7.0]) == 0.0 and reading_step([3.0, 12.0]) == 0.0

    class Cost:
        name, latency_error = "d", 0.1

        def predict_latency_ms(self, archs):  # type: ignore[no-untyped-def]
            return [10.0 for _ in archs]

    class Loop:
        name = "d"

        def __init__(self, readings: list[float]) -> None:
            self.readings = readings

        def known(self) -> dict[str, float]:
            return {f"k{i}": v for i, v in enumerate(self.readings)}

        def measure(self, arch: float) -> Measured:
            return Measured(10.0)

        def refit(self) -> Cost:
            return Cost()

    space = SimpleNamespace(arch_from_json=float, arch_key=str, arch_to_json=float)
    problem = SimpleNamespace(spec=SimpleNamespace(budget=SimpleNamespace(max_latency_ms=10.0)), space=space,
                              devices=[Cost()])
    trials = [SimpleNamespace(number=0, constraints={}, user_attrs={"arch": 1.0, "metrics": {"accuracy": 60.0}})]
    chance = {}
    for name, readings in (("whole", [4.0, 9.0, 17.0]), ("continuous", [4.1, 9.0, 17.0])):
        out = verify_search(problem, trials, {"d": Loop(readings)}, 1, 0.0)
        assert out.measurements == 1 and out.verified
        chance[name] = out.records[0]["chance_predicted"]
    assert chance["continuous"] == 0.5 and chance["whole"] > 0.6
