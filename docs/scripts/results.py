"""Read ``experiments/results/*`` for the benchmark tables of the documentation.

A results file is a JSON list of records ``{"bench", "figure", "value", "unit", "device",
"config"}`` written by ``experiments/bench/*.py``; ``search_nb201_rows.jsonl`` holds one
JSON object per finished search. Every lookup names the file and the figure it wants and
fails loudly when the figure is missing or ambiguous, so a renamed figure breaks the
documentation build instead of printing a stale or empty table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "experiments" / "results"


class MissingFigure(LookupError):
    """A table asked for a figure that its results file does not hold (exactly once)."""


class Results:
    """The records of one results file, looked up by figure name and config values."""

    def __init__(self, name: str, directory: Path = RESULTS_DIR) -> None:
        self.name = name
        self.path = directory / name
        self.records: list[dict[str, Any]] = json.loads(self.path.read_text())

    def record(self, figure: str, device: str | None = None, **config: Any) -> dict[str, Any]:
        """The one record of ``figure`` (and ``device``) whose config holds every ``config`` item."""
        hits = [
            r for r in self.records
            if r["figure"] == figure
            and (device is None or r["device"] == device)
            and all(r["config"].get(k) == v for k, v in config.items())
        ]
        if len(hits) != 1:
            where = f"{figure!r}" + (f" on {device!r}" if device else "") + (f" with {config}" if config else "")
            raise MissingFigure(f"{self.name}: {len(hits)} records of {where}, expected exactly 1")
        return hits[0]

    def value(self, figure: str, device: str | None = None, **config: Any) -> Any:
        return self.record(figure, device, **config)["value"]

    def has(self, figure: str, device: str | None = None, **config: Any) -> bool:
        try:
            self.record(figure, device, **config)
        except MissingFigure:
            return False
        return True

    def source(self) -> str:
        """The line under a table that says where its figures come from."""
        return f"experiments/results/{self.name}"


def rows(name: str, directory: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """A JSON-lines results file (one object per line)."""
    return [json.loads(line) for line in (directory / name).read_text().splitlines() if line.strip()]
