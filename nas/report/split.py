"""The split-inference part of a report: what ``edgenas split --out`` and ``edgenas cascade --out`` wrote.

A split plan becomes Neurosurgeon's figure, a stacked bar per split point (edge compute,
link, cloud compute) with the best marked, and a second chart of how the best split and
its latency move as the bandwidth changes (same round trip); runs made with ``--run`` are
tabled predicted against measured. A cascade becomes its accuracy against mean and p95
latency as the threshold varies, with edge only and cloud only beside it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError
from nas.report.figures import save_figure
from nas.report.markup import element_id

KINDS = ("edgenas-split-plan", "edgenas-cascade")
COLOURS = {"edge": "#1f77b4", "link": "#ff7f0e", "cloud": "#2ca02c"}


def load_split_doc(path: str | Path) -> dict[str, Any]:
    """A plan or cascade JSON, with its file name kept as ``_name``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgenasError(f"--split {path}: no such file; write one with `edgenas split --out` or "
                           "`edgenas cascade --out`") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as exc:
        raise EdgenasError(f"--split {path}: not a JSON file ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("kind") not in KINDS:
        raise EdgenasError(f"--split {path}: not an `edgenas split --out` or `edgenas cascade --out` file")
    doc["_name"] = path.stem
    return doc


def split_section(doc: dict[str, Any]) -> str:
    """HTML for one plan or cascade (plotly divs; the page inlines plotly's JavaScript once)."""
    if doc["kind"] == "edgenas-cascade":
        return _cascade_section(doc)
    name = element_id(doc["_name"])
    best = doc["best"]
    how = (f"edge <b>{html.escape(doc['edge'])}</b>, cloud <b>{html.escape(doc['cloud'])}</b>, link "
           f"{html.escape(doc['link']['label'])}, activations as {html.escape(doc['precision'])}; best: point "
           f"{best['position']} ({html.escape(best['kind'])}, {html.escape(best['label'])}) "
           f"{best['total_ms']:.2f} ms predicted")
    speedups = ", ".join(f"{v:.2f}x {k.removeprefix('speedup_vs_').replace('_', ' ')}"
                         for k in ("speedup_vs_edge_only", "speedup_vs_cloud_only") if (v := doc.get(k)))
    return (f"<h2 id='split-{name}'>Split inference: {html.escape(doc['_name'])}</h2><p class='muted'>{how}"
            f"{' (' + html.escape(speedups) + ')' if speedups else ''}</p>{_stacked(doc)}{_sweep(doc)}{_runs(doc)}")


def _stacked(doc: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    points = doc["points"]
    x = [f"{p['position']}: {p['label']}" for p in points]
    fig = go.Figure()
    for part in ("edge", "link", "cloud"):
        fig.add_trace(go.Bar(x=x, y=[p[f"{part}_ms"] or 0 for p in points], name=f"{part} ms",
                             marker_color=COLOURS[part]))
    best = doc["best"]
    fig.add_annotation(x=x[best["position"]], y=best["total_ms"], text="best", showarrow=True, arrowhead=2)
    fig.update_layout(barmode="stack", title="predicted latency per split point (Neurosurgeon's breakdown)",
                      yaxis_title="ms (predicted)", height=440, margin=dict(l=60, r=20, t=50, b=140))
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"split-stack-{element_id(doc['_name'])}")


def _sweep(doc: dict[str, Any]) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = doc.get("bandwidth_sweep") or []
    if not rows:
        return ""
    rates = [r["rate_mbps"] for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=rates, y=[r["best_ms"] for r in rows], name="best split ms", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=rates, y=[r["edge_only_ms"] for r in rows], name="edge only ms", line=dict(dash="dot")))
    fig.add_trace(go.Scatter(x=rates, y=[r["cloud_only_ms"] for r in rows], name="cloud only ms", line=dict(dash="dash")))
    fig.add_trace(go.Scatter(x=rates, y=[r["best_position"] for r in rows], name="best split point",
                             mode="lines+markers", line=dict(shape="hv", color="#7f7f7f"),
                             text=[r["best_label"] for r in rows]), secondary_y=True)
    fig.update_xaxes(type="log", title_text=f"bandwidth (Mbit/s; round trip {doc['link']['rtt_ms']:g} ms)")
    fig.update_yaxes(title_text="ms (predicted)", type="log", secondary_y=False)
    fig.update_yaxes(title_text="split point (0 = cloud only)", secondary_y=True)
    fig.update_layout(title="how the best split moves with bandwidth", height=420, margin=dict(l=60, r=60, t=50, b=50))
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"split-sweep-{element_id(doc['_name'])}")


def _runs(doc: dict[str, Any]) -> str:
    runs = doc.get("runs") or []
    if not runs:
        return ("<p class='muted'>Not run for real: <code>edgenas split ... --run</code> measures the chosen points "
                "(cloud part in a second process, TCP on 127.0.0.1, link in software).</p>")
    rows = "".join(
        f"<tr><td>{r['position']}</td><td class='l'>{html.escape(r['predicted']['kind'])}</td>"
        f"<td>{r['predicted']['total_ms']:.2f}</td><td>{r['summary']['e2e_ms']['median']:.2f}</td>"
        f"<td>{r['summary']['e2e_ms']['p95']:.2f}</td><td>{r['summary']['e2e_cpu_ms']['median']:.2f}</td>"
        f"<td>{r['error_pct']['e2e_ms']:+.1f}</td><td>{r['summary']['n']}</td>"
        f"<td class='l'>{html.escape(r['edge_how'])}; {html.escape(r['cloud_how'])}</td></tr>" for r in runs)
    return ("<h3>Run for real</h3><table class='sortable'><thead><tr><th>point</th><th class='l'>kind</th>"
            "<th>predicted ms</th><th>measured median ms</th><th>p95 ms</th><th>median, compute on CPU clock</th>"
            f"<th>error %</th><th>requests</th><th class='l'>compiled as</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p class='muted'>{html.escape(runs[0].get('measured_how', ''))}; weights: "
            f"{html.escape(str(doc.get('weights', '')))}</p>")


def _cascade_section(doc: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    name = element_id(doc["_name"])
    sweep, base = doc["sweep"], doc["baselines"]
    fig = go.Figure()
    for stat, dash in (("mean_ms", None), ("p95_ms", "dot")):
        fig.add_trace(go.Scatter(x=[r[stat] for r in sweep], y=[r["accuracy"] for r in sweep], mode="lines+markers",
                                 name=f"cascade ({stat.split('_')[0]})", line=dict(dash=dash),
                                 text=[f"threshold {r['threshold']:.3f}, {100 * r['offloaded']:.0f}% offloaded"
                                       for r in sweep]))
    for label, colour in (("edge_only", "#1f77b4"), ("cloud_only", "#2ca02c")):
        b = base[label]
        fig.add_trace(go.Scatter(x=[b["mean_ms"]], y=[b["accuracy"]], mode="markers", name=label.replace("_", " "),
                                 marker=dict(size=14, symbol="star", color=colour)))
    fig.update_layout(title="cascade: accuracy against latency as the confidence threshold varies",
                      xaxis_title="latency (ms, measured)", yaxis_title="accuracy (%)", height=420,
                      margin=dict(l=60, r=20, t=50, b=50))
    chosen, ran = doc.get("chosen") or {}, doc.get("chosen_run")
    choice = ""
    if chosen.get("threshold") is not None:
        choice = (f"<p>Chosen for {html.escape(chosen['goal'])}: threshold {chosen['threshold']:.4f} "
                  f"({chosen['accuracy']:.2f} %, mean {chosen['mean_ms']:.2f} ms, {100 * chosen['offloaded']:.0f} % "
                  "offloaded)" + (f"; run for real: {ran['accuracy']:.2f} %, mean {ran['mean_ms']:.2f} ms, "
                                  f"p95 {ran['p95_ms']:.2f} ms" if ran else "") + ".</p>")
    how = (f"edge <b>{html.escape(doc['edge'])}</b> runs {html.escape(json.dumps(doc.get('edge_arch'))[:120])}; "
           f"cloud <b>{html.escape(doc['cloud'])}</b> runs the largest network; link "
           f"{html.escape(doc['link']['label'])}; confidence {html.escape(doc['confidence'])}; {doc['images']} images")
    return (f"<h2 id='cascade-{name}'>Cascade: {html.escape(doc['_name'])}</h2><p class='muted'>{how}</p>"
            + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"cascade-{name}") + choice
            + f"<p class='muted'>{html.escape(doc.get('measured_how', ''))}</p>")


def write_split_figures(docs: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Per plan: ``split_NAME.png`` (stacked breakdown and the bandwidth sweep); per cascade:
    ``cascade_NAME.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for doc in docs:
        name = element_id(doc["_name"])
        if doc["kind"] == "edgenas-cascade":
            fig, ax = plt.subplots(figsize=(6, 4), dpi=150)
            ax.plot([r["mean_ms"] for r in doc["sweep"]], [r["accuracy"] for r in doc["sweep"]], "o-", ms=3,
                    label="cascade (mean)")
            ax.plot([r["p95_ms"] for r in doc["sweep"]], [r["accuracy"] for r in doc["sweep"]], ":", label="cascade (p95)")
            for label, marker in (("edge_only", "*"), ("cloud_only", "P")):
                b = doc["baselines"][label]
                ax.scatter([b["mean_ms"]], [b["accuracy"]], s=120, marker=marker, label=label.replace("_", " "), zorder=5)
            ax.set_xlabel("latency (ms, measured)")
            ax.set_ylabel("accuracy (%)")
            ax.legend(fontsize=7)
            written.append(save_figure(fig, out_dir / f"cascade_{name}.png"))
            continue
        fig, (bars, sweep) = plt.subplots(1, 2, figsize=(12, 4), dpi=150)
        pts = doc["points"]
        bottom = [0.0] * len(pts)
        for part in ("edge", "link", "cloud"):
            values = [p[f"{part}_ms"] or 0.0 for p in pts]
            bars.bar(range(len(pts)), values, bottom=bottom, label=part, color=COLOURS[part])
            bottom = [a + b for a, b in zip(bottom, values)]
        bars.annotate("best", (doc["best"]["position"], doc["best"]["total_ms"]), ha="center", va="bottom")
        bars.set_xlabel("split point (0 = cloud only, last = edge only)")
        bars.set_ylabel("ms (predicted)")
        bars.legend(fontsize=7)
        rows = doc.get("bandwidth_sweep") or []
        rates = [r["rate_mbps"] for r in rows]
        sweep.plot(rates, [r["best_ms"] for r in rows], "o-", ms=3, label="best split")
        sweep.plot(rates, [r["edge_only_ms"] for r in rows], ":", label="edge only")
        sweep.plot(rates, [r["cloud_only_ms"] for r in rows], "--", label="cloud only")
        sweep.set_xscale("log")
        sweep.set_yscale("log")
        sweep.set_xlabel(f"bandwidth (Mbit/s; round trip {doc['link']['rtt_ms']:g} ms)")
        sweep.set_ylabel("ms (predicted)")
        twin = sweep.twinx()
        twin.step(rates, [r["best_position"] for r in rows], where="mid", c="#7f7f7f", lw=1)
        twin.set_ylabel("best split point")
        sweep.legend(fontsize=7)
        fig.suptitle(f"{doc['_name']}: edge {doc['edge']}, cloud {doc['cloud']}, {doc['link']['label']}")
        written.append(save_figure(fig, out_dir / f"split_{name}.png"))
    return written


__all__ = ["load_split_doc", "split_section", "write_split_figures"]
