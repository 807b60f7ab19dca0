"""Energy: RAPL counters read from a powercap tree (with wrap-around), and no meter → None."""

from __future__ import annotations

from pathlib import Path

from latency_predictors.energy import RaplMeter, detect_meter, measure_energy


def zone(root: Path, name: str, uj: int, wrap: int = 1_000_000) -> Path:
    z = root / name
    z.mkdir(parents=True, exist_ok=True)
    (z / "energy_uj").write_text(f"{uj}\n")
    (z / "max_energy_range_uj").write_text(f"{wrap}\n")
    return z


def test_rapl_sums_packages_and_unwraps(tmp_path):
    p0 = zone(tmp_path, "intel-rapl:0", 900_000)
    zone(tmp_path, "intel-rapl:1", 100_000)
    zone(tmp_path, "intel-rapl:0:0", 5_000)  # a sub-zone of package 0: not counted twice
    meter = RaplMeter(tmp_path)
    assert meter.available() and meter.read_mj() == 1000.0
    (p0 / "energy_uj").write_text("50000\n")  # package 0 wrapped past 1 J
    assert meter.read_mj() == 1000.0 + 150.0


def test_no_powercap_means_no_meter(tmp_path):
    assert detect_meter({"kind": "llvm"}, powercap=tmp_path / "missing") is None
    assert not RaplMeter(tmp_path).available()


def test_measure_energy_is_per_run():
    class Counter:  # 10 mJ per run, nothing while idle
        name, value = "test", 0.0

        def read_mj(self) -> float:
            return self.value

    meter = Counter()

    def run() -> None:
        meter.value += 10.0

    per_run = measure_energy(meter, run, min_seconds=0.05, sleep=lambda s: None)
    assert per_run == 10.0
