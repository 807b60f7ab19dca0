"""``--sampler screened``: predicted-feasible archs only, never one twice, beats random, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from search_helpers import complete, load

from latency_predictors.nb201_table import load_nb201_latency
from nas.cli import main
from search_spaces import get_space

DEVICE = "table:gold_6240"
BUDGET = "8"


pytestmark = pytest.mark.slow  # searches over trained supernets, ~10-45 s each


def _run(ws: Path, sampler: str, trials: int, *extra: str) -> dict:
    out = ws / f"{sampler}.json"
    assert main(["search", "--space", "nb201", "--device", DEVICE, "--max-latency-ms", BUDGET,
                 "--trials", str(trials), "--sampler", sampler, "--study", sampler, "--buffered",
                 "--workspace", str(ws), "--out", str(out), *extra]) == 0
    return json.loads(out.read_text())


def _archs(ws: Path, name: str) -> list[str]:
    study = load(f"sqlite:///{ws / 'studies.db'}", name)
    return [json.dumps(t.user_attrs["arch"], sort_keys=True) for t in complete(study)]


def test_screened_tries_only_feasible_new_archs_and_beats_random(tmp_path: Path) -> None:
    screened = _run(tmp_path, "screened", 120)
    random_ = _run(tmp_path, "random", 120)
    archs = _archs(tmp_path, "screened")
    assert len(archs) == 120 and len(set(archs)) == 120  # no arch evaluated twice
    assert screened["trials"]["feasible"] == 120  # exact costs: every proposal fits
    assert random_["trials"]["feasible"] < 120
    assert screened["recommended"]["accuracy"] > random_["recommended"]["accuracy"]
    space = get_space("nb201")
    latency = load_nb201_latency().column("gold_6240")
    chosen = space.arch_from_json(screened["recommended"]["arch"]).index
    assert latency[chosen] <= float(BUDGET)


def test_screened_is_reproducible_and_resumes_without_repeats(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _run(a, "screened", 90)
    _run(b, "screened", 60)
    _run(b, "screened", 90)  # the same command with more trials continues the study
    first, resumed = _archs(a, "screened"), _archs(b, "screened")
    assert len(resumed) == 90 and len(set(resumed)) == 90
    assert first[:60] == resumed[:60]


def test_screened_on_mbv3_searches_a_trained_supernet(tiny_config, tmp_path: Path) -> None:
    """The non-enumerable path (random pool, mutations and crossovers of the best) on a real
    tiny supernet and a device imported from measured rows."""
    import csv
    import random

    run, ws = tmp_path / "run", tmp_path / "ws"
    config = tiny_config(space={"name": "mbv3", "options": {"preset": "small", "resolutions": [24, 28, 32]}})
    assert main(["train", str(config), "--out-dir", str(run), "--quiet"]) == 0
    space = get_space("mbv3", preset="small")
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(15)]
    with (tmp_path / "m.csv").open("w", newline="") as fh:  # a meter's rows: cost grows with MACs
        csv.writer(fh).writerows([["arch", "latency_ms"]] + [[space.arch_key(a), 0.5 + space.flops(a) / 4e6]
                                                               for a in archs])
    assert main(["devices", "import", "meter", "--space", "mbv3", "--preset", "small", "--measurements", str(tmp_path / "m.csv"), "--workspace", str(ws)]) == 0
    budget = sorted(0.5 + space.flops(a) / 4e6 for a in archs)[7]
    out = tmp_path / "r.json"
    args = ["search", "--space", "mbv3", "--checkpoint", str(run), "--device", "meter", "--max-latency-ms",
            f"{budget:.4f}", "--safety-margin", "0", "--sampler", "screened", "--study", "m",
            "--workspace", str(ws), "--out", str(out)]
    assert main([*args, "--trials", "52"]) == 0
    assert main([*args, "--trials", "60"]) == 0  # resumed past the random start
    result = json.loads(out.read_text())
    trials = complete(load(f"sqlite:///{ws / 'studies.db'}", "m"))
    keys = [json.dumps(t.user_attrs["arch"], sort_keys=True) for t in trials]
    assert len(trials) == 60 and len(set(keys)) == 60
    assert result["trials"]["feasible"] == 60
    assert result["recommended"]["predicted"]["latency_ms@meter"] <= budget


def test_a_prior_search_is_learned_from_and_never_repeated(tmp_path: Path) -> None:
    """``prior`` (an earlier search's archs and accuracies, as the second search of
    ``--verify`` gets them): the new search skips the random start, proposes archs the
    accuracy predictor ranks high from the first proposal on, and evaluates none twice."""
    from nas.search import Budget, SearchSettings, SearchSpec
    from nas.search.runner import _run, prepare

    spec = SearchSpec("nb201", {}, (DEVICE,), Budget(max_latency_ms=float(BUDGET)), workspace=str(tmp_path))
    problem = prepare(spec, 0.0)
    _study, first, _display, _cheapest = _run(problem, SearchSettings(trials=60, buffered=True, study="a"), True)
    index = problem.names.index("accuracy")
    prior = [(t.params, float(t.values[index])) for t in first]
    _study, second, _display, _cheapest = _run(problem, SearchSettings(trials=20, buffered=True, study="b"), True,
                                               prior)
    key = lambda t: json.dumps(t.user_attrs["arch"], sort_keys=True)  # noqa: E731
    assert len(second) == 20 and not {key(t) for t in second} & {key(t) for t in first}
    # the first 20 of a search without a prior are random feasible archs; with one they are ranked
    accuracy = lambda trials: sum(t.values[index] for t in trials) / len(trials)  # noqa: E731
    assert accuracy(second) > accuracy(first[:20]) + 1.0
    # the pool path (spaces too large to enumerate) too: no random start, nothing of the prior again
    from nas.search.screened import ScreenedSampler

    pooled = ScreenedSampler(problem, seed=0, exhaustive=0, prior=prior)
    assert pooled.batch_size(0) == pooled._step(len(prior))
    proposed = pooled.propose_batch([], 20)
    assert len({pooled._pkey(p) for p in proposed}) == 20
    assert not {pooled._pkey(p) for p in proposed} & {pooled._pkey(p) for p, _ in prior}
