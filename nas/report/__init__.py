"""The report a person picks a model from: Pareto fronts per device, the predictors'
validation, registered models with predicted against measured cost, and what training
and search cost. One self-contained HTML file plus PNG figures beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.report.collect import DeviceView, ReportData, TrialPoint, collect
from nas.report.figures import write_figures
from nas.report.html import render


def write_report(
    study: str,
    storage: Any,
    storage_display: str,
    workspace: Path,
    out: Path,
    devices: list[str] | None = None,
) -> tuple[Path, list[Path]]:
    """Collect, render ``out`` (HTML) and write PNGs into ``out``'s ``figures`` folder."""
    data = collect(study, storage, storage_display, workspace, devices)
    html_path = render(data, out)
    pngs = write_figures(data.devices, out.parent / f"{out.stem}_figures")
    return html_path, pngs


__all__ = ["DeviceView", "ReportData", "TrialPoint", "collect", "render", "write_figures", "write_report"]
