"""Measurements taken elsewhere: a CSV with ``arch``, ``latency_ms`` and optionally ``energy_mj``.

``arch`` is the arch's JSON (for ``nb201`` also the cell string or the index). Every row
is checked before anything is stored; the first bad row is reported as one line naming
the file, the line and the fix.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_spaces import SearchSpace

REQUIRED = ("arch", "latency_ms")


@dataclass(frozen=True)
class ImportedRow:
    arch: Any
    latency_ms: float
    energy_mj: float | None


def read_measurements_csv(path: str | Path, space: SearchSpace) -> list[ImportedRow]:
    """Parse and validate ``path`` against ``space`` (``ValueError``/``FileNotFoundError``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"measurements file {path} does not exist; pass --measurements FILE.csv")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'none'}); "
                "the header must name arch,latency_ms[,energy_mj]"
            )
        rows = []
        for line, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            try:
                arch = space.arch_from_json(row["arch"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{line}: unknown {space.name} arch ({exc}); fix or remove the row") from None
            latency = _positive(row["latency_ms"], "latency_ms", path, line)
            energy = _positive(row["energy_mj"], "energy_mj", path, line) if row.get("energy_mj") else None
            rows.append(ImportedRow(arch, latency, energy))
    if not rows:
        raise ValueError(f"{path} has a header but no rows; add one row per measured arch")
    keys = [space.arch_key(r.arch) for r in rows]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"{path}: arch {dup[:80]} appears more than once; keep one row per arch")
    return rows


def _positive(text: str, column: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: {column} {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{path}:{line}: {column} must be positive, got {text}; fix or remove the row")
    return value
