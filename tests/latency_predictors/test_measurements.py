"""The measurement store: persisted at once, found again by a new store, validated."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from latency_predictors.measurements import Measurement, MeasurementStore


def meas(item: str = "a", role: str = "block", median: float = 1.5, **kw) -> Measurement:
    fields = dict(device="d", space="mbv3", role=role, item=item, backend="tvm", schedule="untuned",
                  target={"kind": "llvm"}, tvm_version="0.27", input_shape=(3, 8, 8), number=1, repeat=3,
                  median_ms=median, spread_ms=0.1, results_ms=(1.4, 1.5, 1.6))  # fmt: skip
    fields.update(kw)
    return Measurement(**fields)


def test_persisted_and_read_back_by_a_new_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'm.db'}"
    MeasurementStore(url).add(meas("a"))
    MeasurementStore(url).add(meas("b", role="train", median=3.0, energy_mj=2.5, energy_method="rapl"))
    store = MeasurementStore(url)  # a new process would see the same
    got = store.get("d", "mbv3", "block", "a", "tvm", "untuned")
    assert got is not None and got.median_ms == 1.5 and got.input_shape == (3, 8, 8)
    assert got.results_ms == (1.4, 1.5, 1.6) and got.target == {"kind": "llvm"}
    assert [m.item for m in store.query("d")] == ["a", "b"]
    assert store.query("d", role="train")[0].energy_mj == 2.5
    assert store.get("d", "mbv3", "block", "zzz", "tvm", "untuned") is None
    assert store.devices() == ["d"]


def test_one_row_per_item_unless_replaced(tmp_path):
    store = MeasurementStore(str(tmp_path / "m.db"))
    store.add(meas("a"))
    with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):  # the table's unique key
        store.add(meas("a", median=2.0))
    assert [m.median_ms for m in store.query("d")] == [1.5]  # the first row is left as it was
    store.add(meas("a", median=2.0), replace_existing=True)
    assert [m.median_ms for m in store.query("d")] == [2.0]
    assert store.delete("d", role="block") == 1 and store.query("d") == []


@pytest.mark.parametrize("kw", [{"median": 0.0}, {"median": -1.0}, {"energy_mj": 0.0}, {"role": "guess"}])
def test_rejects_impossible_values(kw):
    with pytest.raises(ValueError):
        meas(**kw)


def test_reference_readings_round_trip(tmp_path):
    store = MeasurementStore(str(tmp_path / "m.db"))
    store.add(meas("a", reference_ms=(0.9, 1.1, 1.0)))
    store.add(meas("b"))
    got = {m.item: m.reference_ms for m in store.query("d")}
    assert got == {"a": (0.9, 1.1, 1.0), "b": ()}


def test_a_store_written_before_reference_readings_existed_gains_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    columns = ("id INTEGER PRIMARY KEY, device TEXT, space TEXT, role TEXT, item TEXT, backend TEXT, schedule TEXT, "
               "target TEXT, tvm_version TEXT, input_shape TEXT, number INT, repeat INT, median_ms REAL, "
               "spread_ms REAL, results_ms TEXT, energy_mj REAL, energy_method TEXT, created TIMESTAMP")
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE measurements ({columns})")
        conn.execute("INSERT INTO measurements VALUES (1, 'd', 'mbv3', 'block', 'old', 'tvm', 'untuned', "
                     "'{}', '0.27', '[3, 8, 8]', 1, 3, 1.5, 0.1, '[1.5]', NULL, NULL, '2024-01-01 00:00:00')")
    store = MeasurementStore(str(path))
    store.add(meas("new", reference_ms=(1.0, 1.0, 1.0)))
    got = {m.item: (m.median_ms, m.reference_ms) for m in store.query("d")}
    assert got == {"old": (1.5, ()), "new": (1.5, (1.0, 1.0, 1.0))}
