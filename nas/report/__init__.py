"""The report a person picks a model from: Pareto fronts per device, the predictors'
validation, registered models with predicted against measured cost, and what training
and search cost; and, for ``edgenas adapt`` outputs, accuracy per method over rounds and
bytes per method. One self-contained HTML file plus PNG figures beside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.report.adapt import AdaptRun, load_adapt_run, write_adapt_figures
from nas.report.collect import DeviceView, ReportData, TrialPoint, collect
from nas.report.figures import write_figures
from nas.report.html import render


def write_report(
    study: str | None,
    storage: Any,
    storage_display: str,
    workspace: Path,
    out: Path,
    devices: list[str] | None = None,
    adapt_runs: Sequence[AdaptRun] = (),
) -> tuple[Path, list[Path]]:
    """Collect, render ``out`` (HTML) and write PNGs into ``out``'s ``figures`` folder.

    ``study`` ``None``: only the ``adapt_runs`` (``edgenas adapt`` outputs) are shown.
    """
    data = collect(study, storage, storage_display, workspace, devices) if study is not None else None
    html_path = render(data, out, adapt_runs)
    figures = out.parent / f"{out.stem}_figures"
    pngs = write_figures(data.devices, figures) if data is not None else []
    pngs += write_adapt_figures(list(adapt_runs), figures)
    return html_path, pngs


__all__ = ["AdaptRun", "DeviceView", "ReportData", "TrialPoint", "collect", "load_adapt_run", "render", "write_figures", "write_report"]
