"""What a profile says about itself in one line and in ``edgenas devices list``: held-out
accuracy, why there were few held-out networks, and the noise floor as figures."""

from __future__ import annotations

from latency_predictors.device_profile import DeviceProfile
from nas.cli import main
from nas.profiling import noise_text, summary_line
from search_spaces import get_space

NOISE = {"n": 8, "cv_pct": 1.84, "max_rel_dev_pct": 3.41, "uncorrected_cv_pct": 15.2, "drift_range_pct": 61.4}


def short_profile() -> DeviceProfile:
    space = get_space("mbv3", preset="small")
    return DeviceProfile(
        name="laptop", space=space.describe(), target={"kind": "llvm", "num-cores": 1}, reached={"kind": "local"},
        noise_floor=dict(NOISE), counts={"block": 40, "train": 5, "holdout": 3, "noise": 8, "reference": 5},
        plan={"holdout": 3, "holdout_from_budget": True,
              "notes": ["3 held-out networks (not 10) because the budget is 3 minutes: ..."]},
        validation={"block_sum": {"n": 3, "within_10pct": 2 / 3, "mape_pct": 8.2, "spearman": 0.5}},
    )


def test_noise_floor_in_words_and_figures():
    assert noise_text(NOISE) == ("noise floor CV 1.8%, max deviation 3.4% (uncorrected CV 15.2%), "
                                 "drift range 61%")
    assert noise_text({"n": 8, "cv_pct": 2.0, "max_rel_dev_pct": 4.0}) == "noise floor CV 2.0%, max deviation 4.0%"
    assert noise_text({**NOISE, "exponent": 0.7}).endswith("drift range 61%, drift exponent 0.7")
    assert noise_text(None) == "" and noise_text({"n": 1}) == ""


def test_summary_line_says_few_held_out_and_gives_figures():
    line = summary_line(short_profile())
    assert "67% within ±10% on 3 held-out networks (few: short budget)" in line
    assert "noise floor CV 1.8%, max deviation 3.4%" in line and "drift range 61%" in line
    assert "measured 40 block, 3 holdout, 8 noise, 5 reference, 5 train" in line and "{" not in line


def test_devices_list_shows_the_noise_floor_as_columns(tmp_path, capsys):
    short_profile().save(tmp_path / "profiles" / "laptop.json")
    assert main(["devices", "list", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-3:] == ["CV%", "maxdev%", "drift%"]
    row = out[1].split()
    assert row[0] == "laptop" and row[-3:] == ["1.8", "3.4", "61"] and row[-6] == "67%"


def test_few_held_out_is_said_only_when_the_budget_chose_it():
    profile = short_profile()
    profile.plan = {"holdout": 3, "holdout_from_budget": False, "notes": ["budget reached with 2 of 9 planned "
                                                                         "networks unmeasured (1 training, 1 held-out)"]}
    assert "(few: short budget)" not in summary_line(profile)
