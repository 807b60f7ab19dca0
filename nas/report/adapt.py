"""The adaptation part of a report: what ``edgenas adapt`` wrote, per method over rounds.

A simulation's ``out_dir/results.json`` becomes one section: accuracy per method over
rounds, bytes per device-round each way, and a table of the summary (the same figures as
``experiments/bench/adapt.py``: accuracy in round 1 and over the last 5 rounds,
communication relative to FedAvg and HeteroFL, device training memory, rounds to the
target, rejected updates). A real round's ``round.json`` becomes a table of its devices.
An unfinished simulation is shown as far as it got.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError
from nas.report.figures import save_figure
from nas.report.markup import element_id

METHOD_COLOURS = {"nebula": "#d62728", "no_adaptation": "#7f7f7f", "local_only": "#2ca02c", "fedavg": "#1f77b4",
                  "heterofl": "#9467bd"}


@dataclass
class AdaptRun:
    """One ``edgenas adapt`` output: a simulation (``rounds`` per method) or a real round (``devices``)."""

    name: str
    path: Path
    config: dict[str, Any]
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    rounds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    real_round: dict[str, Any] | None = None


def load_adapt_run(path: str | Path) -> AdaptRun:
    """Read ``results.json`` (a simulation) or ``round.json`` (a real round) from ``path`` or its directory."""
    path = Path(path)
    candidates = [path] if path.is_file() else [path / "results.json", path / "round.json"]
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        raise EdgenasError(f"--adapt {path}: no results.json or round.json there; run `edgenas adapt CONFIG.yaml` "
                           "and pass its out_dir")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EdgenasError(f"{file} is corrupt or truncated ({exc.__class__.__name__}); rerun `edgenas adapt`, "
                           "which resumes") from None
    name = file.parent.name
    if isinstance(data, dict) and "methods" in data and "config" in data:
        from nas.adapt.simulator import summarise

        rounds = {m: v.get("rounds", []) for m, v in data["methods"].items()}
        return AdaptRun(name, file, data["config"], summarise(data), rounds)  # also for an unfinished run
    if isinstance(data, dict) and "devices" in data and "version_before" in data:
        return AdaptRun(name, file, {}, real_round=data)
    raise EdgenasError(f"{file} is not an `edgenas adapt` output (no methods or devices in it)")


def comm_ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float]:
    """How many times fewer bytes per device-round Nebula sends than FedAvg and HeteroFL."""
    neb = summary.get("nebula")
    if not neb or not neb.get("bytes_per_device_round"):
        return {}
    return {base: summary[base]["bytes_per_device_round"] / neb["bytes_per_device_round"]
            for base in ("fedavg", "heterofl") if base in summary}


def adapt_section(run: AdaptRun) -> str:
    """HTML for one run (plotly divs; the page inlines plotly's JavaScript once)."""
    title = f"<h2 id='adapt-{element_id(run.name)}'>Adaptation: {html.escape(run.name)}</h2>"
    if run.real_round is not None:
        return title + _real_round_table(run)
    c = run.config
    dev = c.get("devices", {})
    how = (f"{c.get('data', {}).get('name')} · {c.get('decomposition', 'modular')} decomposition · "
           f"{dev.get('count')} devices, {dev.get('per_round_min')}-{dev.get('per_round_max')} per round, "
           f"{dev.get('classes_per_device')} classes each · {len(next(iter(run.rounds.values()), []))} of "
           f"{c.get('rounds')} rounds done · {'continuous' if c.get('continuous') else 'one-step'} adaptation · "
           f"{c.get('local', {}).get('epochs')} local epochs")
    return (f"{title}<p class='muted'>{html.escape(how)} · <code>{html.escape(str(run.path))}</code></p>"
            f"{_summary_table(run)}{_accuracy_plot(run)}{_bytes_plot(run)}")


def _summary_table(run: AdaptRun) -> str:
    ratios = comm_ratios(run.summary)
    rows = []
    for method, s in run.summary.items():
        reach = s.get("rounds_to_target")
        rows.append(
            f"<tr><td class='l'>{html.escape(method)}</td><td>{s['accuracy_round1']:.1f}</td>"
            f"<td>{s['accuracy_final']:.1f}</td><td>{s.get('accuracy_final_after_training', 0.0):.1f}</td>"
            f"<td>{s['bytes_per_device_round'] / 1e3:.1f}</td><td>{s['peak_memory_bytes_mean'] / 1e6:.2f}</td>"
            f"<td>{s.get('time_per_batch_ms_median', 0.0):.2f}</td><td>{_esc('-' if reach is None else reach)}</td>"
            f"<td>{_esc(s.get('rejected', 0))}</td><td>{_esc(s.get('failed', 0))}</td>"
            f"<td>{_esc(s.get('budget_errors', 0))}</td></tr>")
    ratio_text = ", ".join(f"{v:.2f}x less than {k}" for k, v in ratios.items())
    return ("<table class='sortable'><thead><tr><th class='l'>method</th><th>acc. round 1 %</th>"
            "<th>acc. last 5 rounds %</th><th>acc. after local training %</th><th>KB per device-round</th>"
            "<th>train memory MB</th><th>ms per batch</th>"
            f"<th>rounds to {_esc(run.config.get('target_accuracy', '?'))} %</th><th>rejected</th><th>failed</th>"
            f"<th>over budget</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            + (f"<p>Nebula's communication: {html.escape(ratio_text)} (bytes both ways, serialised).</p>"
               if ratio_text else ""))


def _accuracy_plot(run: AdaptRun) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for method, rounds in run.rounds.items():
        done = [r for r in rounds if r.get("accuracy") is not None]
        fig.add_trace(go.Scatter(x=[r["round"] for r in done], y=[r["accuracy"] for r in done], mode="lines+markers",
                                 name=method, line=dict(color=METHOD_COLOURS.get(method))))
    fig.update_layout(title="accuracy of the sampled devices on their local test data", xaxis_title="round",
                      yaxis_title="accuracy (%)", height=400, margin=dict(l=60, r=20, t=50, b=50))
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"adapt-acc-{element_id(run.name)}")


def _bytes_plot(run: AdaptRun) -> str:
    import plotly.graph_objects as go

    methods = list(run.summary)
    down, up = _bytes_per_device_round(run)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=methods, y=[d / 1e3 for d in down], name="down (cloud to device)"))
    fig.add_trace(go.Bar(x=methods, y=[u / 1e3 for u in up], name="up (device to cloud)"))
    fig.update_layout(barmode="stack", title="communication per device-round", yaxis_title="KB", height=360,
                      margin=dict(l=60, r=20, t=50, b=50))
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"adapt-bytes-{element_id(run.name)}")


def _bytes_per_device_round(run: AdaptRun) -> tuple[list[float], list[float]]:
    """Bytes down and up per device-round of every method in ``run.summary``."""
    s = run.summary
    return ([s[m]["bytes_down"] / s[m]["device_rounds"] for m in s], [s[m]["bytes_up"] / s[m]["device_rounds"] for m in s])


def _real_round_table(run: AdaptRun) -> str:
    rec = run.real_round or {}
    rows = "".join(
        f"<tr><td class='l'>{html.escape(d['dir'])}</td><td>{d['accuracy_before']:.1f}</td>"
        f"<td>{d['accuracy_after']:.1f}</td><td>{d['peak_memory_bytes'] / 1e6:.2f}</td>"
        f"<td>{d['time_per_batch_ms']:.2f}</td>"
        f"<td class='l'><code>{html.escape(json.dumps(d['arch'], separators=(',', ':'))[:200])}</code></td></tr>"
        for d in rec.get("devices", []))
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in rec.get("rejected", []) + rec.get("budget_errors", []))
    return (f"<p class='muted'>one real round from <code>{html.escape(str(rec.get('checkpoint')))}</code> "
            f"({html.escape(str(rec.get('decomposition', 'modular')))}): version {html.escape(str(rec.get('version_before')))}"
            f" to {html.escape(str(rec.get('version_after')))}, {rec.get('bytes_down', 0) / 1e3:.1f} KB down, "
            f"{rec.get('bytes_up', 0) / 1e3:.1f} KB up</p>"
            "<table class='sortable'><thead><tr><th class='l'>device</th><th>acc. before %</th><th>acc. after %</th>"
            f"<th>train memory MB</th><th>ms per batch</th><th class='l'>sub-model</th></tr></thead><tbody>{rows}</tbody>"
            "</table>" + (f"<p>Not absorbed:</p><ul>{problems}</ul>" if problems else ""))


def _esc(value: Any) -> str:
    return html.escape(str(value))


def unique_names(runs: list[AdaptRun]) -> list[AdaptRun]:
    """Give runs whose folders share a name distinct names (their figures and chart ids must not clash)."""
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name}-{seen[run.name]}"
    return runs


def write_adapt_figures(runs: list[AdaptRun], out_dir: Path) -> list[Path]:
    """Per simulation: ``adapt_NAME.png`` (accuracy per method over rounds, and bytes per device-round)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for run in runs:
        if not run.rounds:
            continue
        fig, (acc, comm) = plt.subplots(1, 2, figsize=(10, 4), dpi=150)
        for method, rounds in run.rounds.items():
            done = [r for r in rounds if r.get("accuracy") is not None]
            acc.plot([r["round"] for r in done], [r["accuracy"] for r in done], "o-", ms=3, label=method,
                     c=METHOD_COLOURS.get(method))
        acc.set_xlabel("round")
        acc.set_ylabel("accuracy (%)")
        acc.legend(fontsize=7)
        methods = list(run.summary)
        down, up = _bytes_per_device_round(run)
        comm.bar(methods, [d / 1e3 for d in down], label="down")
        comm.bar(methods, [u / 1e3 for u in up], bottom=[d / 1e3 for d in down], label="up")
        comm.set_ylabel("KB per device-round")
        comm.tick_params(axis="x", labelrotation=30, labelsize=7)
        comm.legend(fontsize=7)
        fig.suptitle(run.name)
        written.append(save_figure(fig, out_dir / f"adapt_{element_id(run.name)}.png"))
    return written
