"""How far the report says to trust it: the warning beside a device's front when its
predictor validated below 90 % within ±10 %, the noise floor as figures, and the
registered models' predicted against measured latency and ranking (no search needed:
the report is rendered from the data it gathers)."""

from __future__ import annotations

import pytest

from nas.report.collect import DeviceView, ReportData, TrialPoint, ranking_agreement, trust_warning
from nas.report.html import render


def profile(within: float, reached: str = "local", n: int = 20) -> dict:
    return {"name": "cpu", "predictor": "block_sum", "reached": {"kind": reached}, "backend": "tvm",
            "schedule_label": "untuned", "target": {"kind": "llvm"}, "energy": "not measured",
            "validation": {"block_sum": {"n": n, "within_10pct": within, "within_5pct": within / 2, "mape_pct": 7.5,
                                         "spearman": 0.95, "kendall": 0.9}},
            "noise_floor": {"n": 8, "cv_pct": 1.8, "max_rel_dev_pct": 3.4, "uncorrected_cv_pct": 15.2,
                            "drift_range_pct": 61.0}}


def test_warning_below_90_percent_says_what_to_do():
    text = trust_warning("cpu", profile(0.85))
    assert "85 % of 20 networks" in text and "--verify K" in text and "--budget-minutes" in text
    assert trust_warning("cpu", profile(0.90)) is None and trust_warning("cpu", profile(0.97)) is None
    assert trust_warning("cpu", None) is None  # a tabulated device: nothing to judge
    imported = trust_warning("phone", profile(0.6, reached="import"))
    assert "cross-validated" in imported and "devices suggest phone" in imported


def entry(ref: str, inherited: float, tuned: float, predicted: float, measured: float) -> dict:
    return {"ref": ref, "device": "cpu", "lineage": {"pick": ref.split(":")[0], "trial": 1},
            "metrics": {"accuracy_inherited": inherited, "accuracy": tuned, "predicted_latency_ms": predicted,
                        "measured_latency_ms": measured}, "artifacts": {}}


def test_ranking_agreement_finds_swapped_pairs():
    same = ranking_agreement([entry("best:1", 62.0, 70.0, 2, 2), entry("knee:1", 60.0, 68.0, 1, 1)])
    assert same == {"pairs": 1, "agree": 1, "swapped": []}
    swapped = ranking_agreement([entry("best:1", 62.0, 68.0, 2, 2), entry("knee:1", 60.0, 70.0, 1, 1),
                                 entry("small:1", 50.0, 55.0, 1, 1)])
    assert swapped["pairs"] == 3 and swapped["agree"] == 2
    assert swapped["swapped"] == [{"ranked_higher": "best:1", "finetuned_better": "knee:1",
                                   "inherited": (62.0, 60.0), "finetuned": (68.0, 70.0)}]
    assert ranking_agreement([entry("best:1", 62.0, 68.0, 2, 2)]) is None


def data(within: float, registered: list[dict]) -> ReportData:
    points = [TrialPoint(i, {"i": i}, 50.0 + i, 1.0 + i / 10, None, 10.0, 1.0, True) for i in range(5)]
    view = DeviceView("cpu", points, points, points[2], points[-1], 2.0, profile=profile(within))
    return ReportData("s", "sqlite", {"space": {"name": "mbv3"}, "budget": {"max_latency_ms": 2.0}}, 5, 5, 1.0, 1.0,
                      [view], registered, None)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    pytest.importorskip("plotly")
    out = tmp_path_factory.mktemp("reports")
    registered = [entry("best:1", 62.0, 68.0, 2.0, 2.5), entry("knee:1", 60.0, 70.0, 1.5, 1.55)]
    return {"bad": render(data(0.62, registered), out / "bad.html").read_text(),
            "good": render(data(0.95, registered[1:]), out / "good.html").read_text()}


def test_untrusted_device_gets_a_visible_warning_beside_its_front(pages):
    page = pages["bad"]
    assert page.count("id='trust-cpu'") == 2  # above the plot and above the front's table
    warning = page.index("id='trust-cpu'")
    assert page.index("id='device-cpu'") < warning < page.index("Feasible Pareto front")
    assert "62 % of 20 networks" in page and "<code>edgenas search ... --device cpu --verify K</code>" in page
    assert "trust-cpu" not in pages["good"]


def test_noise_floor_is_shown_as_figures_not_json(pages):
    page = pages["good"]
    assert "noise floor CV 1.8%, max deviation 3.4% (uncorrected CV 15.2%), drift range 61%" in page
    assert "cv_pct" not in page and "drift_range_pct" not in page  # no JSON blob


def test_registered_models_show_measured_against_predicted_and_ranking(pages):
    page = pages["bad"]
    assert "1 of 2 within ±10 %" in page and "best:1 (-20.0 %)" in page
    assert "id='ranking'" in page and "knee:1 fine-tuned better than best:1" in page
    assert "1 of 1 pairs swapped" in page
    good = pages["good"]
    assert "1 of 1 within ±10 %" in good and "id='ranking'" not in good  # one model: nothing to rank
