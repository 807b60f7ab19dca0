"""Static PNG figures beside the HTML report (matplotlib, for papers and slides)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.report.collect import DeviceView


def write_figures(views: list[DeviceView], out_dir: Path) -> list[Path]:
    """Per device: ``pareto_DEVICE.png`` and, when measured, ``validation_DEVICE.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for view in views:
        fig, ax = plt.subplots(figsize=(6, 4), dpi=150)
        bad = [p for p in view.points if not p.feasible]
        good = [p for p in view.points if p.feasible]
        ax.scatter([p.latency_ms for p in bad], [p.accuracy for p in bad], s=10, c="#bbbbbb", marker="x", label="infeasible")
        ax.scatter([p.latency_ms for p in good], [p.accuracy for p in good], s=12, c="#6baed6", label="feasible")
        ax.plot([p.latency_ms for p in view.front], [p.accuracy for p in view.front], "o-", c="#d62728", ms=4,
                label="Pareto front")
        for label, p, color in (("knee", view.knee, "#2ca02c"), ("best", view.best, "#9467bd")):
            if p is not None:
                ax.scatter([p.latency_ms], [p.accuracy], s=140, marker="*", c=color, label=label, zorder=5)
        if view.max_latency_ms:
            ax.axvline(view.max_latency_ms, ls="--", c="#444", lw=1, label="budget")
            if view.safety_margin:
                ax.axvline(view.max_latency_ms / (1 + view.safety_margin), ls=":", c="#888", lw=1,
                           label=f"budget less {100 * view.safety_margin:.0f} % margin")
        ax.set_xlabel(f"predicted {view.metric_label} (ms)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(view.name)
        ax.legend(fontsize=7)
        written.append(save_figure(fig, out_dir / f"pareto_{view.name}.png"))
        if view.validation_pairs:
            fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=150)
            measured = [m for m, _ in view.validation_pairs]
            predicted = [p for _, p in view.validation_pairs]
            lo, hi = min(measured + predicted) * 0.9, max(measured + predicted) * 1.1
            ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="#2ca02c", alpha=0.15, label="±10 %")
            ax.plot([lo, hi], [lo, hi], ":", c="#2ca02c")
            ax.scatter(measured, predicted, s=12, c="#1f77b4", label="held-out networks")
            ax.set_xlabel("measured latency (ms)")
            ax.set_ylabel("predicted latency (ms)")
            ax.set_title(f"{view.name}: latency predictor")
            ax.legend(fontsize=7)
            written.append(save_figure(fig, out_dir / f"validation_{view.name}.png"))
    return written


def save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write and close a matplotlib figure; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
