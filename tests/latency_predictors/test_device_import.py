"""Importing a device never loses what is stored: name clashes are refused (or backed up on
request), other spaces are never replaced, names cannot escape the profiles folder, and a
large import stores its rows in one transaction and cross-validates a bounded subsample."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from lp_helpers import FAST
from sqlalchemy import event

from latency_predictors.csv_import import ImportedRow
from latency_predictors.device_import import import_device
from latency_predictors.device_profile import DeviceProfile, fit_cost_model, validate_device_name
from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.errors import ProfileExistsError
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.predictors import RegressorSelector
from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan
from search_spaces import get_space

FAST_CV = 2  # cv_max_rows where the figures are not the point: below 3 rows nothing is cross-validated
PLAN = ProfilePlan(noise_repeats=2, holdout=3, train=3, pool_archs=20, seed_blocks=4, round_size=2, max_blocks=6)


def imported(space, n: int, seed: int = 0, scale: float = 1.0) -> list[ImportedRow]:
    """Archs with a cost that grows with FLOPs (what an external meter reports)."""
    rng = random.Random(seed)
    archs = {space.arch_key(a): a for a in (space.sample(rng) for _ in range(n))}
    return [ImportedRow(a, scale * (0.5 + space.flops(a) / 4e6), None) for a in archs.values()]


def table(store: MeasurementStore, device: str) -> list[tuple]:
    return sorted((m.role, m.space, m.item, m.backend, m.schedule, m.median_ms) for m in store.query(device))


@pytest.fixture
def eager_profiled(tiny_space, tmp_path):
    """A device profiled for real (eager backend, tiny space): blocks, networks, noise."""
    profile = DeviceProfile(name="this-cpu", space=tiny_space.describe(), target={"kind": "eager"},
                            reached={"kind": "local"}, backend="eager")  # fmt: skip
    store = MeasurementStore(f"sqlite:///{tmp_path / 'measurements.db'}")
    profiler = EagerProfiler(threads=1, timing=FAST)
    ProfileBuilder(profile, tiny_space, profiler, store, tmp_path / "profiles", plan=PLAN, progress=False,
                   log=lambda _: None).run()  # fmt: skip
    return store, tmp_path / "profiles"


def test_existing_profile_is_refused_then_replaced_with_a_restorable_backup(tiny_space, eager_profiled):
    store, profiles = eager_profiled
    path = profiles / "this-cpu.json"
    before_bytes, before_rows = path.read_bytes(), table(store, "this-cpu")
    archs = [tiny_space.sample(random.Random(s)) for s in range(4)]
    before_pred = fit_cost_model(DeviceProfile.load(path), store).predict(archs)["latency_ms"]
    rows = imported(tiny_space, 12)

    with pytest.raises(ProfileExistsError) as info:
        import_device("this-cpu", tiny_space, rows, store, profiles, "m.csv", progress=False,
                      cv_max_rows=FAST_CV)  # fmt: skip
    message = str(info.value)
    assert "already has a profile" in message and "profiled with eager on this machine" in message
    assert "--add" in message and "--replace" in message and "\n" not in message
    assert path.read_bytes() == before_bytes and table(store, "this-cpu") == before_rows
    assert sorted(p.name for p in profiles.iterdir()) == ["this-cpu.json"]

    new = import_device("this-cpu", tiny_space, rows, store, profiles, "m.csv", replace=True, progress=False,
                        cv_max_rows=FAST_CV)
    assert DeviceProfile.load(path).reached == {"kind": "import", "file": "m.csv"} and new.backend == "import"
    backups = sorted(profiles.glob("this-cpu.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == before_bytes
    after_rows = table(store, "this-cpu")
    assert set(before_rows) <= set(after_rows)  # the eager measurements are all still there
    assert len(after_rows) == len(before_rows) + len(rows)

    backups[0].replace(path)  # restore by renaming the backup back
    restored = fit_cost_model(DeviceProfile.load(path), store).predict(archs)["latency_ms"]
    np.testing.assert_allclose(restored, before_pred)


@pytest.mark.slow
def test_reimport_with_replace_keeps_the_old_import_restorable(tmp_path):
    space = get_space("mbv3", preset="small")
    store = MeasurementStore(f"sqlite:///{tmp_path / 'm.db'}")
    profiles = tmp_path / "profiles"
    old = import_device("meter", space, imported(space, 15), store, profiles, "a.csv", progress=False,
                        cv_max_rows=FAST_CV)  # fmt: skip
    archs = [space.sample(random.Random(100 + s)) for s in range(3)]
    old_pred = fit_cost_model(old, store, space=space).predict(archs)["latency_ms"]
    old_bytes = (profiles / "meter.json").read_bytes()

    new = import_device("meter", space, imported(space, 15, seed=1, scale=3.0), store, profiles, "b.csv",
                        replace=True, progress=False, cv_max_rows=FAST_CV)  # fmt: skip
    assert (old.schedule_label, new.schedule_label) == ("external", "external-2")
    new_pred = fit_cost_model(DeviceProfile.load(profiles / "meter.json"), store, space=space).predict(archs)
    assert np.all(new_pred["latency_ms"] > 2 * old_pred)
    (backup,) = profiles.glob("meter.json.bak-*")
    assert backup.read_bytes() == old_bytes
    backup.replace(profiles / "meter.json")
    again = fit_cost_model(DeviceProfile.load(profiles / "meter.json"), store, space=space).predict(archs)
    np.testing.assert_allclose(again["latency_ms"], old_pred)


def test_another_space_under_the_same_name_is_refused_even_with_replace(tmp_path):
    mbv3, nb201 = get_space("mbv3", preset="small"), get_space("nb201")
    store = MeasurementStore(f"sqlite:///{tmp_path / 'm.db'}")
    profiles = tmp_path / "profiles"
    import_device("dev", mbv3, imported(mbv3, 12), store, profiles, "a.csv", progress=False, cv_max_rows=FAST_CV)
    before, rows_before = (profiles / "dev.json").read_bytes(), table(store, "dev")
    nb_rows = [ImportedRow(nb201.arch_from_json(str(i)), 1.0 + i / 100, None) for i in range(60, 80)]
    for replace in (False, True):
        with pytest.raises(ProfileExistsError, match=r"already has a profile for space mbv3 \(preset small\).*"
                                                     r"never replaced by one for space nb201"):  # fmt: skip
            import_device("dev", nb201, nb_rows, store, profiles, "b.csv", replace=replace, progress=False)
    assert (profiles / "dev.json").read_bytes() == before and table(store, "dev") == rows_before
    assert sorted(p.name for p in profiles.iterdir()) == ["dev.json"]


def test_unreadable_existing_profile_is_refused(tmp_path):
    space = get_space("mbv3", preset="small")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "dev.json").write_text("{ broken")
    with pytest.raises(ProfileExistsError, match="exists but cannot be read"):
        import_device("dev", space, imported(space, 5), MeasurementStore(f"sqlite:///{tmp_path / 'm.db'}"),
                      profiles, "a.csv", replace=True, progress=False)  # fmt: skip
    assert (profiles / "dev.json").read_text() == "{ broken"


@pytest.mark.parametrize("name", ["pixel7", "rpi4.b_1-x", "A" * 100, ".hidden"])
def test_good_device_names(name):
    assert validate_device_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../../evil", "a/b", "a\\b", "/abs", "a b", "x" * 101, "pi\u00e9",
                                  "nul\x00", "new\nline"])  # fmt: skip
def test_bad_device_names_write_nothing(tmp_path, name):
    space = get_space("mbv3", preset="small")
    (tmp_path / "ws").mkdir()
    store = MeasurementStore(f"sqlite:///{tmp_path / 'ws' / 'm.db'}")
    with pytest.raises(ValueError, match="device name") as info:
        import_device(name, space, imported(space, 5), store, tmp_path / "ws" / "profiles", "a.csv", progress=False)
    assert "\n" not in str(info.value) and len(str(info.value)) < 250
    written = sorted(p.name for p in tmp_path.rglob("*") if not p.name.startswith("m.db-"))  # SQLite WAL files
    assert written == ["m.db", "ws"] and store.devices() == []
    profile = DeviceProfile(name=name, space=space.describe(), target={}, reached={"kind": "local"})
    with pytest.raises(ValueError, match="device name"):
        profile.save(tmp_path / "ws" / "profiles" / "x.json")


def test_store_many_rows_in_one_transaction(tmp_path):
    store = MeasurementStore(f"sqlite:///{tmp_path / 'm.db'}")
    commits = []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))
    rows = [
        Measurement(device="d", space="s", role="import", item=f"arch-{i}", backend="import", schedule="external",
                    target={}, tvm_version="n/a", input_shape=(3, 8, 8), number=1, repeat=1, median_ms=1.0 + i,
                    spread_ms=0.0)
        for i in range(12000)
    ]  # fmt: skip
    assert store.add_many(rows) == 12000
    assert len(commits) == 1
    got = store.query("d")
    assert len(got) == 12000 and got[-1].item == "arch-11999" and got[-1].median_ms == 12000.0
    assert store.schedules("d", role="import") == ["external"]


@pytest.mark.slow
def test_large_import_cross_validates_a_bounded_subsample(tmp_path, capsys):
    space = get_space("mbv3", preset="small")
    store = MeasurementStore(f"sqlite:///{tmp_path / 'm.db'}")
    rows = imported(space, 3000, seed=3)
    profile = import_device("big", space, rows, store, tmp_path / "profiles", "big.csv", progress=False,
                            cv_max_rows=200)  # fmt: skip
    figures = profile.validation["whole_network"]
    assert figures["n"] == 200 and figures["rows_imported"] == len(rows)
    assert f"a random 200 of the {len(rows)} imported networks" in figures["how"]
    assert figures["within_10pct"] > 0.8
    assert len(store.query("big", role="import")) == len(rows)
    assert capsys.readouterr().err == ""  # progress=False: nothing on stderr
    saved = json.loads((tmp_path / "profiles" / "big.json").read_text())
    assert saved["counts"] == {"import": len(rows)}


def test_selector_compares_candidates_on_a_subsample_and_refits_on_all():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 10, size=(600, 3))
    y = X[:, 0] * 2 + X[:, 1]
    model = RegressorSelector(candidates=("ridge", "knn"), selection_samples=100).fit(X, y)
    assert model.n_selection_samples_ == 100
    if model.best_ == "knn":
        assert model.estimator_[-1].n_samples_fit_ == 600
    assert np.mean(np.abs(model.predict(X) - y) / y) < 0.1
    assert RegressorSelector(candidates=("ridge",), selection_samples=None).fit(X, y).n_selection_samples_ == 600
