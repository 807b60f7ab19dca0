"""One self-contained HTML report (plotly's JavaScript inlined: it works offline)."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.report.collect import DeviceView, ReportData, TrialPoint, ranking_agreement
from nas.report.markup import element_id

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem} th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f3f3f3;cursor:pointer;user-select:none} td.l,th.l{text-align:left} .muted{color:#666;font-size:.9rem}
.kv td{text-align:left} code{background:#f5f5f5;padding:0 .2rem;word-break:break-all} td.l code{display:inline-block;max-width:36rem} .note{background:#fffbe6;border:1px solid #f0e0a0;padding:.6rem 1rem}
.warn{background:#fdecea;border:1px solid #e0a0a0;border-left:6px solid #c62828;padding:.6rem 1rem}
"""

_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.asc !== 'true'; th.dataset.asc = asc;
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v || a.cells[col].textContent, y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def render(data: ReportData | None, path: Path, adapt_runs: Sequence[Any] = (), sections: Sequence[str] = ()) -> Path:
    """Write the report to ``path`` (self-contained HTML); returns ``path``.

    ``data``: a study's search (``None``: none); ``adapt_runs``: :class:`nas.report.adapt.AdaptRun`
    sections (``edgenas adapt`` outputs) after it; ``sections``: more HTML sections after those
    (split plans and cascades, :mod:`nas.report.split`).
    """
    from plotly.offline import get_plotlyjs

    from nas.report.adapt import adapt_section

    parts = []
    if data is not None:
        parts.append(_summary(data))
        for view in data.devices:
            parts.append(_device_section(view))
        parts.append(_registered_section(data))
    parts.extend(adapt_section(run) for run in adapt_runs)
    parts.extend(sections)
    body = "\n".join(parts)
    subject = data.study if data is not None else ", ".join(run.name for run in adapt_runs) or "split inference"
    title = f"edgenas report: {html.escape(subject)}"
    generated = data.generated if data is not None else time.strftime("%Y-%m-%d %H:%M:%S %Z")
    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{title}</h1><p class='muted'>generated {html.escape(generated)}</p>{body}"
        f"<script>{_SORT_JS}</script></body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _summary(data: ReportData) -> str:
    ident = data.identity
    budget = {k: v for k, v in ident.get("budget", {}).items() if v not in (None, 0, 0.0)}
    rows = [
        ("space", ident.get("space", {}).get("name")),
        ("accuracy from", _accuracy_source(ident.get("accuracy", {}))),
        ("objectives", ", ".join(ident.get("objectives", []))),
        ("budget", ", ".join(f"{k} = {v}" for k, v in budget.items()) or "none"),
        ("study storage", data.storage),
        ("trials", f"{data.trials_complete} finished, {data.trials_feasible} feasible"),
        ("search cost", f"{data.search_wall_s:.1f} s wall time, {data.search_trial_s:.1f} s in trials"),
        ("training cost", _training(data.training)),
    ]
    table = "".join(f"<tr><th class='l'>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return (
        "<h2>Summary</h2><table class='kv'>" + table + "</table>"
        "<p class='note'>Costs of trials are <b>predicted</b> by each device's profile (the "
        "search never runs the device); registered models show predicted next to "
        "<b>measured</b> cost. Feasible means every budget holds for the prediction. The "
        "<b>knee</b> is the front's point farthest above the line joining its cheapest and "
        "its most accurate points (both axes scaled over the front): past it, more latency "
        "buys little accuracy. <b>Best</b> is the most accurate feasible trial.</p>"
    )


def _accuracy_source(source: dict[str, Any]) -> str:
    kind = source.get("kind", "")
    if "table" in kind or source.get("dataset"):
        return f"{kind} {source.get('dataset', '')} (tabulated)".strip()
    return f"{kind} (BN recalibrated per arch)" + (f", checkpoint {source.get('checkpoint_sha256', '')[:12]}" if source.get("checkpoint_sha256") else "")


def _training(training: dict[str, Any] | None) -> str:
    if not training:
        return "not applicable (tabular accuracy)"
    if training.get("note"):
        return training["note"]
    if training.get("train_seconds"):
        return f"{training.get('steps')} steps, {training['train_seconds']:.0f} s on {training.get('world_size', 1)} process(es)"
    return f"{training.get('steps', '?')} steps (checkpoint {training.get('checkpoint')})"


def _hover(p: TrialPoint) -> str:
    arch = json.dumps(p.arch, separators=(",", ":"))
    if len(arch) > 160:
        arch = arch[:157] + "..."
    extra = "" if p.energy_mj is None else f"<br>energy {p.energy_mj:.2f} mJ"
    return (f"trial {p.number}<br>accuracy {p.accuracy:.2f} %<br>latency {p.latency_ms:.3f} ms{extra}"
            f"<br>{p.mflops or 0:.1f} MFLOPs, {p.params_m or 0:.2f} M params<br>{html.escape(arch)}")


def _scatter(view: DeviceView, cost: str) -> str:
    import plotly.graph_objects as go

    def value(p: TrialPoint) -> float | None:
        return p.latency_ms if cost == "latency" else p.energy_mj

    unit = "ms" if cost == "latency" else "mJ"
    fig = go.Figure()
    for label, pts, style in (
        ("infeasible", [p for p in view.points if not p.feasible], dict(color="#bbbbbb", symbol="x", size=6)),
        ("feasible", [p for p in view.points if p.feasible], dict(color="#6baed6", size=7)),
    ):
        fig.add_trace(go.Scatter(x=[value(p) for p in pts], y=[p.accuracy for p in pts], mode="markers",
                                 name=label, marker=style, text=[_hover(p) for p in pts], hoverinfo="text"))
    front = sorted(view.front, key=lambda p: value(p) or 0.0)
    fig.add_trace(go.Scatter(x=[value(p) for p in front], y=[p.accuracy for p in front], mode="lines+markers",
                             name="feasible Pareto front", marker=dict(color="#d62728", size=9),
                             line=dict(color="#d62728"), text=[_hover(p) for p in front], hoverinfo="text"))
    for label, p, color in (("knee", view.knee, "#2ca02c"), ("best", view.best, "#9467bd")):
        if p is not None and value(p) is not None:
            fig.add_trace(go.Scatter(x=[value(p)], y=[p.accuracy], mode="markers", name=label,
                                     marker=dict(color=color, size=16, symbol="star"), text=[_hover(p)], hoverinfo="text"))
    if cost == "latency" and view.max_latency_ms:
        fig.add_vline(x=view.max_latency_ms, line_dash="dash", line_color="#444",
                      annotation_text=f"budget {view.max_latency_ms} ms")
        if view.safety_margin:
            allowed = view.max_latency_ms / (1 + view.safety_margin)
            fig.add_vline(x=allowed, line_dash="dot", line_color="#888", annotation_position="bottom left",
                          annotation_text=f"allowed for predictions ({100 * view.safety_margin:.0f} % margin)")
    what = view.metric_label if cost == "latency" else cost
    fig.update_layout(title=f"{view.name}: accuracy against predicted {what}", xaxis_title=f"{what} ({unit}, predicted)",
                      yaxis_title="accuracy (%)", height=460, margin=dict(l=60, r=20, t=50, b=50))
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"pareto-{cost}-{element_id(view.name)}")


def _validation_plot(view: DeviceView) -> str:
    import plotly.graph_objects as go

    figures = (view.profile or {}).get("validation", {})
    rows = "".join(
        f"<tr><td class='l'>{html.escape(kind)}</td>" + "".join(
            f"<td>{_fmt(v.get(k))}</td>" for k in ("n", "mape_pct", "within_5pct", "within_10pct", "spearman", "kendall"))
        + "</tr>"
        for kind, v in figures.items() if isinstance(v, dict) and "n" in v
    )
    table = ("<table><thead><tr><th class='l'>predictor (validated on)</th><th>n</th><th>MAPE %</th><th>within ±5 %</th>"
             f"<th>within ±10 %</th><th>Spearman</th><th>Kendall</th></tr></thead><tbody>{rows}</tbody></table>") if rows else ""
    from nas.profiling import noise_text as describe_noise

    noise = describe_noise((view.profile or {}).get("noise_floor"))
    noise_text = f"<p class='muted'>{html.escape(noise)} (one held-out network timed again over the profile)</p>" if noise else ""
    if not view.validation_pairs:
        reason = (view.profile or {}).get("validation_unavailable") or (
            "this device has no profile in this workspace" if view.profile is None
            else "no held-out whole networks were measured for this device (imported measurements are "
                 "validated by cross-validation, in the table)")
        return f"{table}{noise_text}<p class='muted'>Predicted against measured scatter: {html.escape(reason)}.</p>"
    measured = [m for m, _ in view.validation_pairs]
    predicted = [p for _, p in view.validation_pairs]
    lo, hi = min(measured + predicted) * 0.9, max(measured + predicted) * 1.1
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi, hi, lo], y=[lo * 0.9, hi * 0.9, hi * 1.1, lo * 1.1], fill="toself",
                             fillcolor="rgba(44,160,44,0.12)", line=dict(width=0), name="±10 %", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(color="#2ca02c", dash="dot"), name="exact"))
    fig.add_trace(go.Scatter(x=measured, y=predicted, mode="markers", name="held-out networks",
                             marker=dict(color="#1f77b4", size=7)))
    fig.update_layout(title=f"{view.name}: predicted against measured latency (held-out whole networks)",
                      xaxis_title="measured (ms)", yaxis_title="predicted (ms)", height=420,
                      margin=dict(l=60, r=20, t=50, b=50))
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"validation-{element_id(view.name)}") + table + noise_text


def _device_section(view: DeviceView) -> str:
    has_energy = any(p.energy_mj is not None for p in view.points)
    profile = view.profile or {}
    how = (f"profiled with {profile.get('backend', '?')} ({profile.get('schedule_label', '?')}), target "
           f"<code>{html.escape(json.dumps(profile.get('target')))}</code>, energy: {html.escape(str(profile.get('energy')))}"
           if profile else "cost from an imported or tabulated profile")
    rows = "".join(
        f"<tr><td>{p.number}</td><td>{p.accuracy:.2f}</td><td>{p.latency_ms:.3f}</td>"
        f"<td>{_fmt(p.energy_mj)}</td><td>{_fmt(p.mflops)}</td><td>{_fmt(p.params_m)}</td>"
        f"<td class='l'>{'knee ' if p is view.knee else ''}{'best' if p is view.best else ''}</td>"
        f"<td class='l'><code>{html.escape(json.dumps(p.arch, separators=(',', ':')))}</code></td></tr>"
        for p in view.front
    )
    table = ("<table class='sortable'><thead><tr><th>trial</th><th>accuracy %</th><th>latency ms</th><th>energy mJ</th>"
             f"<th>MFLOPs</th><th>params M</th><th class='l'>pick</th><th class='l'>arch</th></tr></thead><tbody>{rows}</tbody></table>")
    energy = _scatter(view, "energy") if has_energy else "<p class='muted'>Energy: not measured on this device.</p>"
    warning = view.trust_warning
    warn = (f"<p class='warn' id='trust-{element_id(view.name)}'><b>Predicted costs not yet trustworthy.</b> "
            f"{_code_spans(warning)}</p>" if warning else "")
    return (f"<h2 id='device-{element_id(view.name)}'>Device {html.escape(view.name)}</h2><p class='muted'>{how}</p>"
            f"{warn}{_scatter(view, 'latency')}{energy}<h3>Feasible Pareto front ({len(view.front)} archs; click a column to sort)</h3>"
            f"{warn}{table}<h3>Latency predictor</h3>{_validation_plot(view)}")


def _code_spans(text: str) -> str:
    """``text`` escaped, with its `backquoted` parts as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _registered_section(data: ReportData) -> str:
    if not data.registered:
        return ("<h2>Registered models</h2><p class='muted'>None from this study yet: "
                "<code>edgenas finetune STUDY --device NAME</code> fine-tunes, measures and registers one.</p>")
    rows = []
    for e in data.registered:
        m, lin = e.get("metrics", {}), e.get("lineage", {})
        pred, meas = m.get("predicted_latency_ms"), m.get("measured_latency_ms")
        err = f"{100 * (pred - meas) / meas:+.1f}" if pred and meas else "-"
        rows.append(
            f"<tr><td class='l'>{html.escape(e['ref'])}</td><td class='l'>{html.escape(e['device'])}</td>"
            f"<td class='l'>{html.escape(str(lin.get('pick', '')))} (trial {lin.get('trial', '?')})</td>"
            f"<td>{_fmt(m.get('accuracy_inherited'))}</td><td>{_fmt(m.get('accuracy'))}</td>"
            f"<td>{_fmt(pred)}</td><td>{_fmt(meas)}</td><td>{err}</td><td>{_fmt(m.get('measured_energy_mj'))}</td>"
            f"<td>{_fmt(m.get('mflops'))}</td><td>{_fmt(m.get('params_m'))}</td>"
            f"<td class='l'>{', '.join(sorted(e.get('artifacts', {})))}</td></tr>")
    return ("<h2>Registered models</h2><table class='sortable'><thead><tr><th class='l'>model</th><th class='l'>device</th>"
            "<th class='l'>picked as</th><th>acc. inherited %</th><th>acc. fine-tuned %</th><th>latency predicted ms</th>"
            "<th>latency measured ms</th><th>error %</th><th>energy measured mJ</th><th>MFLOPs</th><th>params M</th>"
            f"<th class='l'>exports</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"{_latency_check(data.registered)}{_ranking(data.registered)}"
            "<p class='muted'>Export one with <code>edgenas registry export REF --format onnx --out-dir DIR</code>; "
            "every artifact's sha256 is checked first.</p>")


def _latency_check(entries: list[dict[str, Any]]) -> str:
    """One line: how many registered models measured within ±10 % of their prediction."""
    pairs = [(e["ref"], e["metrics"]["predicted_latency_ms"], e["metrics"]["measured_latency_ms"]) for e in entries
             if (e.get("metrics") or {}).get("predicted_latency_ms") and (e.get("metrics") or {}).get("measured_latency_ms")]
    if not pairs:
        return ""
    off = [(ref, 100 * (p - m) / m) for ref, p, m in pairs if abs(p - m) / m > 0.10]
    text = f"Measured against predicted latency: {len(pairs) - len(off)} of {len(pairs)} within ±10 %"
    if off:
        text += "; off by more: " + ", ".join(f"{html.escape(ref)} ({err:+.1f} %)" for ref, err in off)
    return f"<p class='{'warn' if off else 'muted'}' id='latency-check'>{text}.</p>"


def _ranking(entries: list[dict[str, Any]]) -> str:
    """Whether inherited accuracy ranked the registered models as fine-tuning did."""
    agreement = ranking_agreement(entries)
    if agreement is None:
        return ""
    if not agreement["swapped"]:
        return (f"<p class='muted' id='ranking'>Inherited (supernet) accuracy ranked the {len(entries)} registered "
                f"models as fine-tuning did ({agreement['pairs']} of {agreement['pairs']} pairs in the same order).</p>")
    swaps = "; ".join(
        f"{html.escape(s['finetuned_better'])} fine-tuned better than {html.escape(s['ranked_higher'])} "
        f"({s['finetuned'][1]:.2f} % against {s['finetuned'][0]:.2f} %) though its inherited accuracy was lower "
        f"({s['inherited'][1]:.2f} % against {s['inherited'][0]:.2f} %)" for s in agreement["swapped"])
    return (f"<p class='note' id='ranking'>Inherited accuracy did <b>not</b> rank the registered models as "
            f"fine-tuning did: {len(agreement['swapped'])} of {agreement['pairs']} pairs swapped. {swaps}. "
            "Fine-tune more than one candidate before choosing.</p>")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
