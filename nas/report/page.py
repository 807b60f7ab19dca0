"""Write the report: one self-contained HTML file (works offline) and PNG figures beside it.

:func:`write_report` is what ``edgenas report`` runs: it opens the study (the workspace's
or ``storage``), gathers each device's trials, profile and validation, the registered
models of the study and what training and search cost (:func:`nas.report.collect.collect`),
adds the ``edgenas adapt`` outputs given, and renders the page.

Example::

    from nas.report import write_report
    from nas.workspace import Workspace

    html, pngs = write_report(Workspace.resolve(), "mbv3-laptop-5ms")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nas.errors import EdgenasError
from nas.report.adapt import load_adapt_run, unique_names, write_adapt_figures
from nas.report.collect import collect
from nas.report.figures import write_figures
from nas.report.html import render
from nas.report.split import load_split_doc, split_section, write_split_figures
from nas.workspace import Workspace


def write_report(
    workspace: Workspace,
    study: str | None = None,
    *,
    out: str | Path | None = None,
    storage: str | None = None,
    devices: Sequence[str] | None = None,
    adapt_dirs: Sequence[str | Path] = (),
    split_files: Sequence[str | Path] = (),
) -> tuple[Path, list[Path]]:
    """Write the report of ``study`` and/or of ``adapt_dirs`` (``edgenas adapt`` out_dirs)
    and ``split_files`` (``edgenas split --out`` / ``edgenas cascade --out`` files).

    ``out`` defaults to ``WORKSPACE/reports/STUDY.html`` (``adapt.html`` without a study);
    PNG figures go to ``OUT_STEM_figures/`` beside it. Returns the HTML path and the PNGs.
    """
    if study is None and not adapt_dirs and not split_files:
        raise EdgenasError("give a STUDY (as printed by edgenas search), --adapt RUN_DIR (an edgenas adapt "
                           "out_dir), --split FILE (an edgenas split or cascade --out file), or several")
    runs = unique_names([load_adapt_run(path) for path in adapt_dirs])
    splits = [load_split_doc(p) for p in split_files]
    path = Path(out) if out else workspace.report_path(study or ("adapt" if runs else "split"))
    if path.is_dir():
        raise EdgenasError(f"--out {path} is a directory; name an HTML file")
    data = None
    if study is not None:
        from nas.search import open_edgenas_study

        opened, display = open_edgenas_study(workspace, study, storage)
        data = collect(opened, display, workspace, list(devices) if devices else None)
    html_path = render(data, path, runs, [split_section(d) for d in splits])
    figures = path.parent / f"{path.stem}_figures"
    pngs = write_figures(data.devices, figures) if data is not None else []
    pngs += write_adapt_figures(list(runs), figures)
    pngs += write_split_figures(splits, figures) if splits else []
    return html_path, pngs
