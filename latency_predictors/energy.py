"""Energy meters: NVML on NVIDIA GPUs, RAPL on Linux CPUs, or none (then nothing is invented).

A meter integrates a device's energy counter over a window of at least ``min_seconds``
(NVML's counter updates every ~100 ms, RAPL's every ~1 ms; a window of 1-2 s keeps the
quantisation error small), subtracts the idle power measured over a window of the same
length, and divides by the number of runs. :func:`detect_meter` returns ``None`` where
the device has no meter; a profile then records energy as "not measured".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

NOT_MEASURED = "not measured"


class EnergyMeter(Protocol):
    name: str

    def read_mj(self) -> float:
        """A monotonic energy counter in millijoules."""
        ...


@dataclass
class RaplMeter:
    """Sum of the package-level RAPL zones under ``root`` (``/sys/class/powercap``),
    unwrapping each counter at its ``max_energy_range_uj``."""

    root: Path = Path("/sys/class/powercap")
    name: str = "rapl"

    def zones(self) -> list[Path]:
        return sorted(
            p for p in self.root.glob("intel-rapl:*") if p.name.count(":") == 1 and (p / "energy_uj").is_file()
        )

    def available(self) -> bool:
        try:
            return bool(self.zones()) and all(_readable(z / "energy_uj") for z in self.zones())
        except OSError:
            return False

    def read_mj(self) -> float:
        total = 0.0
        for zone in self.zones():
            value = int((zone / "energy_uj").read_text())
            wrap = int((zone / "max_energy_range_uj").read_text()) if (zone / "max_energy_range_uj").is_file() else 0
            last = self._last.get(zone)
            if last is not None and value < last[0] and wrap:
                self._offset[zone] = self._offset.get(zone, 0) + wrap
            self._last[zone] = (value, wrap)
            total += (value + self._offset.get(zone, 0)) / 1e3
        return total

    def __post_init__(self) -> None:
        self._last: dict[Path, tuple[int, int]] = {}
        self._offset: dict[Path, int] = {}


@dataclass
class NvmlMeter:
    """The GPU's total-energy counter (NVML, Volta and later), in millijoules."""

    index: int = 0
    name: str = "nvml"

    def __post_init__(self) -> None:
        import pynvml  # optional: nvidia-ml-py

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)

    def read_mj(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))


def detect_meter(target: dict[str, Any], powercap: Path = Path("/sys/class/powercap")) -> EnergyMeter | None:
    """The meter for a local ``target``: NVML for ``cuda``, RAPL for CPUs, else ``None``."""
    if target.get("kind") == "cuda":
        try:
            return NvmlMeter()
        except Exception:  # no pynvml, no driver, or a GPU without the energy counter
            return None
    rapl = RaplMeter(powercap)
    return rapl if rapl.available() else None


def measure_energy(
    meter: EnergyMeter, run: Callable[[], None], min_seconds: float = 1.5, sleep: Callable[[float], None] = time.sleep
) -> float:
    """Energy of one ``run()`` in mJ: runs repeated for at least ``min_seconds``, minus
    the idle energy of an equally long pause, divided by the number of runs."""
    start, t0 = meter.read_mj(), time.perf_counter()
    runs = 0
    while time.perf_counter() - t0 < min_seconds:
        run()
        runs += 1
    busy_mj, busy_s = meter.read_mj() - start, time.perf_counter() - t0
    idle_start, t1 = meter.read_mj(), time.perf_counter()
    sleep(busy_s)
    idle_w = (meter.read_mj() - idle_start) / max(time.perf_counter() - t1, 1e-9)
    return max(busy_mj - idle_w * busy_s, 0.0) / runs


def _readable(path: Path) -> bool:
    try:
        path.read_text()
    except OSError:
        return False
    return True
