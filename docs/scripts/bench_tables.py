"""The benchmark tables of the documentation, generated from ``experiments/results/``.

Each public function here returns one Markdown table (with a line naming its source
files) and is used by a ``<!-- table: NAME -->`` marker in a page under ``docs/``
(``gen_pages.py`` fills the markers at build time). Nothing in this file is a measured
figure: the numbers come from the results files; the only constants are the targets the
figures are judged against (requirements, not measurements) and row labels.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from results import Results, rows

# ---------------------------------------------------------------------------- helpers


def _target(value: float, op: str, limit: float, unit: str = "", scale: float = 1.0) -> str:
    """``">= 850 images/s: **met**"``, or ``**missed**`` with the shortfall."""
    ok = value >= limit if op == ">=" else value <= limit
    shown = f"{op} {limit:g}{(' ' + unit) if unit else ''}"
    if ok:
        return f"{shown}: **met**"
    gap = abs(value - limit) * scale
    gap_unit = "points" if unit == "%" else unit
    shown_gap = f"{gap:.2g}" if gap < 1 else f"{gap:.1f}"
    return f"{shown}: **missed** by {shown_gap}{(' ' + gap_unit) if gap_unit else ''}"


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _source(*names: str) -> str:
    return "\n\n*Generated from " + ", ".join(f"`experiments/results/{n}`" for n in names) + ".*"


# ------------------------------------------------------------ supernet training speed


def supernet_gpu() -> str:
    """Sandwich step against static steps, and sub-network evaluation, on the GPU."""
    thr, ev, ev16 = Results("supernet_throughput.json"), Results("subnet_eval.json"), Results("subnet_eval_fp16.json")
    step = thr.record("sandwich_step_time")
    c = step["config"]
    static = thr.record("static_subnets_step_time")
    per = ", ".join(f"{s:.3f}" for s in static["config"]["per_subnet_s"])
    ips = thr.value("sandwich_images_per_s")
    ratio = thr.value("sandwich_over_static")
    median = ev.value("seconds_per_subnet_median")
    e = ev.record("seconds_per_subnet_median")["config"]
    body = [
        ["one sandwich step (largest + smallest + 2 random, in-place distillation)",
         f"{step['value']:.3f} s, **{ips:,.0f} images/s**", _target(ips, ">=", 850, "images/s")],
        ["the same 4 sub-networks trained as static models, one step each",
         f"{static['value']:.3f} s ({per} s each)", ""],
        ["the largest sub-network alone as a static model", f"{thr.value('static_largest_images_per_s'):,.0f} images/s", ""],
        ["sandwich step / static steps", f"**{ratio:.2f}**", _target(ratio, "<=", 1.3)],
        ["peak GPU memory, sandwich / static",
         f"{thr.value('peak_memory_sandwich'):.1f} / {thr.value('peak_memory_static'):.1f} GiB", ""],
        [f"evaluate one new sub-network: BN recalibration on {e['calib_images']:,} images + accuracy on "
         f"{e['val_images']:,}",
         f"**{median:.3f} s** median ({e['amp']}; slowest {ev.value('seconds_per_subnet_max'):.3f} s), "
         f"{ev16.value('seconds_per_subnet_median'):.3f} s ({ev16.record('seconds_per_subnet_median')['config']['amp']})",
         _target(median, "<=", 0.2, "s") + f" ({e['amp']})"],
        ["one-time warm-up before the first evaluation (every block shape once)",
         f"{ev.value('one_time_warmup'):.1f} s ({e['amp']}), {ev16.value('one_time_warmup'):.1f} s (fp16)", ""],
        ["peak GPU memory while evaluating",
         f"{ev.value('peak_memory'):.2f} GiB ({e['amp']}), {ev16.value('peak_memory'):.2f} GiB (fp16)", ""],
    ]
    head = (f"Measured on {step['device']} (torch {c['torch']}): space `{c['space']}` at resolution "
            f"{c['resolution']}, batch {c['batch']}, {c['amp']} autocast, channels-last "
            f"{'on' if c['channels_last'] else 'off'}, {c['steps']} timed steps after warm-up. Evaluation: "
            f"{e['archs']} new sub-networks (mean {e['mean_mflops']} MFLOPs), batches of {e['batch']}.\n\n")
    return head + _table(["figure", "measured", "target"], body) + _source(
        "supernet_throughput.json", "subnet_eval.json", "subnet_eval_fp16.json")


def supernet_cpu() -> str:
    """The same two benchmarks' ``--smoke`` size on the project's CPU machine."""
    thr, ev = Results("supernet_throughput_cpu.json"), Results("subnet_eval_cpu.json")
    step = thr.record("sandwich_step_time")
    c = step["config"]
    e = ev.record("seconds_per_subnet_median")["config"]
    body = [
        ["one sandwich step", f"{step['value']:.3f} s ({thr.value('sandwich_images_per_s'):.1f} images/s)"],
        ["the same 4 sub-networks as static models", f"{thr.value('static_subnets_step_time'):.3f} s"],
        ["sandwich step / static steps", f"{thr.value('sandwich_over_static'):.2f}"],
        [f"evaluate one sub-network (BN recalibration on {e['calib_images']} + accuracy on {e['val_images']} images)",
         f"{ev.value('seconds_per_subnet_median'):.3f} s median"],
    ]
    head = (f"{step['device']}, torch {c['torch']}: `{c['space']}`, resolution {c['resolution']}, batch "
            f"{c['batch']}, {c['amp']}, {c['steps']} timed steps (a shared machine).\n\n")
    return head + _table(["figure", "measured"], body) + _source("supernet_throughput_cpu.json", "subnet_eval_cpu.json")


def _load(c: dict) -> str:
    """The run's recorded 1-minute load averages, start and end, for a table's head (nothing when not recorded)."""
    load = c.get("load_average")
    if not load:
        return ""
    return f" (load average {load['start'][0]:.1f} at the start, {load['end'][0]:.1f} at the end)"


def gpt_rank_fidelity() -> str:
    """Inherited-weight validation loss of gpt sub-networks against training them from scratch."""
    r = Results("gpt_rank_fidelity.json")
    tau = r.record("kendall_tau", smoke=False)
    c = tau["config"]
    body = [[f"`{row['arch']}`", f"{row['mflops']:.1f}", f"{row['inherited_loss']:.3f}", f"{row['scratch_loss']:.3f}"]
            for row in c["rows"]]
    head = (f"{tau['device']}, torch {c['torch']}: `{c['space']}` on `{c['data']}`, {c['steps']} steps of "
            f"{c['batch']} windows of {c['context']} bytes ({c['tokens_seen']:,} tokens per sub-network), "
            f"{'progressive shrinking' if c['progressive'] else 'plain sandwich'}, `distill_weight` "
            f"{c.get('distill_weight', 1.0):g} (the share of a smaller sub-network's loss from the largest's "
            f"predictions, the rest from the labels); losses in nats per "
            f"byte on {c['eval_tokens']:,} validation tokens{_load(c)}.\n\n")
    table = _table(["sub-network", "MFLOPs", "inherited loss", "from-scratch loss"], body)
    summary = _table(["figure", "measured", "target"], [
        ["Kendall's tau (inherited vs from scratch)", f"{tau['value']:.3f}", _target(tau["value"], ">=", 0.8)],
        ["Spearman's rho", f"{r.value('spearman_rho', smoke=False):.3f}", ""],
    ])
    return head + table + "\n\n" + summary + _source("gpt_rank_fidelity.json")


def gpt_throughput_cpu() -> str:
    """gpt sandwich step against static steps, and sub-network evaluation, on the project's CPU."""
    r = Results("gpt_throughput_cpu.json")
    step = r.record("sandwich_step_time")
    c = step["config"]
    e = r.record("subnet_eval_time")["config"]
    ratio = r.value("sandwich_over_static")
    body = [
        ["one sandwich step", f"{step['value']:.3f} s ({r.value('sandwich_tokens_per_s'):,.0f} tokens/s)", ""],
        ["the same 4 sub-networks as static models", f"{r.value('static_subnets_step_time'):.3f} s", ""],
        ["sandwich step / static steps", f"{ratio:.2f}", _target(ratio, "<=", 1.3)],
        [f"evaluate one new sub-network ({e['eval_tokens']:,} tokens)",
         f"{r.value('subnet_eval_time'):.3f} s median ({r.value('subnet_evals_per_s'):.2f} sub-networks/s, "
         f"{r.value('eval_tokens_per_s'):,.0f} tokens/s)", ""],
    ]
    head = (f"{step['device']}, torch {c['torch']}: `{c['space']}`, batch {c['batch']} x {c['context']} tokens, "
            f"{c['amp']}, {c['optimizer']}, {c['threads']} thread(s), {c['steps']} timed steps (a shared machine).\n\n")
    return head + _table(["figure", "measured", "target"], body) + _source("gpt_throughput_cpu.json")


def gpt_predictor_accuracy() -> str:
    """A gpt profile's two latency predictors on whole sub-networks it never measured."""
    r = Results("gpt_predictor_accuracy.json")
    body = []
    first = None
    for metric in ("decode_ms", "prefill_ms"):
        for kind in ("block_sum", "whole_network"):
            if not r.has(f"{metric}_{kind}_within_10pct"):
                continue
            rec = r.record(f"{metric}_{kind}_within_10pct")
            first = first or rec
            c = rec["config"]
            within = rec["value"]
            lo, hi = c["measured_ms_range"]
            body.append([f"`{metric}`", kind + (" (the profile's)" if c["chosen_predictor"] else ""),
                         f"{within:.0f} %", f"{r.value(f'{metric}_{kind}_within_5pct'):.0f} %",
                         f"{r.value(f'{metric}_{kind}_mape'):.1f} %", f"{r.value(f'{metric}_{kind}_spearman'):.3f}",
                         f"{c['worst_rel_error_pct']:.0f} %", f"{lo:.2f}-{hi:.2f}",
                         _target(within, ">=", 95, "%") if c["chosen_predictor"] else ""])
    assert first is not None, "gpt_predictor_accuracy.json holds no within_10pct figure"
    c = first["config"]
    wall = f"{r.value('profile_wall_time'):.1f} min" if r.has("profile_wall_time") else "not recorded"
    load = c["validation_load_average"]
    head = (f"{first['device']}: `{c['space']}`, {c['validation_networks']} random sub-networks the profile never "
            f"measured, each timed end to end in both phases. Profile: budget {c['budget_minutes']:g} min, wall "
            f"time {wall}, {sum(c['profile_counts'].values())} measurements ({c['profile_counts'].get('block', 0)} "
            f"blocks); load average (1 min) {load[0][0]:.1f} before and {load[1][0]:.1f} after the validation "
            f"networks ({c['validation_minutes']:.0f} min), on a 2-core machine shared with other jobs.\n\n")
    noise = (f"\n\nNoise floor of the profile: CV {r.value('noise_floor_cv'):.1f} %; median IQR / median of the "
             f"validation timings: decode {r.value('decode_ms_validation_iqr_over_median'):.1f} %, prefill "
             f"{r.value('prefill_ms_validation_iqr_over_median'):.1f} %." if r.has("noise_floor_cv") else "")
    return head + _table(["metric", "predictor", "within ±10 %", "within ±5 %", "MAPE", "Spearman", "worst",
                          "measured ms", "target"], body) + noise + _source("gpt_predictor_accuracy.json")


# ------------------------------------------------------------------ latency predictors


def _predictor(name: str) -> str:
    r = Results(name)
    first = r.record("block_sum_within_10pct")
    counts = first["config"]["profile_counts"]

    def both(metric: str, fmt: str) -> list[str]:
        return [fmt.format(r.value(f"block_sum_{metric}")), fmt.format(r.value(f"whole_network_{metric}"))]

    within = r.value("block_sum_within_10pct")
    wall = r.value("profile_wall_time")
    body = [
        ["within ±10 %", *both("within_10pct", "{:.0f} %"), _target(within, ">=", 95, "%") + " (block_sum)"],
        ["within ±5 %", *both("within_5pct", "{:.0f} %"), ""],
        ["MAPE", *both("mape", "{:.1f} %"), ""],
        ["RMSE", *both("rmse", "{:.3f} ms"), ""],
        ["Spearman / Kendall",
         f"{r.value('block_sum_spearman'):.3f} / {r.value('block_sum_kendall'):.3f}",
         f"{r.value('whole_network_spearman'):.3f} / {r.value('whole_network_kendall'):.3f}", ""],
        ["noise floor (one network timed 10 times: CV of the medians, max deviation)",
         f"{r.value('noise_floor_cv'):.2f} %, {r.value('noise_floor_max_dev'):.2f} %", "", ""],
        ["spread within one measurement (IQR / median, median over the validation networks)",
         f"{r.value('validation_iqr_over_median'):.1f} %", "", ""],
        ["profile wall time / measurements",
         f"{wall:.1f} min / {r.value('profile_measurements')} ({counts['block']} blocks, {counts['train']} "
         f"training networks, {counts['holdout']} held-out, {counts['noise']} noise-floor timings)", "",
         _target(wall, "<=", 20, "min")],
    ]
    head = (f"{first['device']}; space `{first['config']['space']}`, target `{json.dumps(first['config']['target'])}`; "
            f"{first['config']['validation_networks']} validation networks the profile never measured, "
            "compiled and timed end to end.\n\n")
    return head + _table([f"figure ({first['config']['validation_networks']} held-out networks)", "block_sum",
                          "whole_network", "target"], body) + _source(name)


def predictor_quiet() -> str:
    """Before drift correction: the profile and its predictors on a quiet machine."""
    return _predictor("predictor_accuracy_before_quiet.json")


def predictor_loaded() -> str:
    """Before drift correction: the same on the loaded machine (other jobs running)."""
    return _predictor("predictor_accuracy_before_loaded.json")


def _replay(name: str) -> str:
    r = Results(name)
    replay = sorted((x for x in r.records if x["figure"] == "replay_within_10pct"), key=lambda x: x["config"]["blocks"])
    body = [[str(x["config"]["blocks"]), str(x["config"].get("train_networks_by_then", "all")),
             str(x["config"]["measurements"]), f"{x['config']['wall_min']:.1f}", f"{x['value']:.0f} %",
             f"{x['config']['mape_pct']:.1f} %", f"{x['config']['spearman']:.3f}"]
            for x in replay]
    reach = r.record("wall_time_to_95pct_within_10pct")
    reached = "not reached with the measurements of this profile" if reach["value"] is None else f"{reach['value']:.1f} min"
    tail = (f"\n\nWhole profile: {r.value('profile_wall_time'):.1f} min and {r.value('profile_measurements')} "
            f"measurements by the measurement log. Time until 95 % of the networks are within ±10 %: **{reached}**.")
    return _table(["blocks measured", "training networks by then", "measurements", "minutes into the profile",
                   "within ±10 %", "MAPE", "Spearman"], body) + tail + _source(name)


def profile_cost_replay_before() -> str:
    """Before drift correction: accuracy against the blocks measured, replayed from the log."""
    return _replay("profile_cost_before.json")


def profile_cost_replay() -> str:
    """Accuracy against the blocks measured, replayed from the 10-minute profile's log."""
    return _replay("profile_cost.json")


BREAKDOWN_PHASES = (
    ("export", "`torch.export`"), ("import", "Relax import (torch's decompositions)"),
    ("relax_pipeline", "TVM Relax pipeline (legalise, fuse)"), ("kernel_names", "naming kernels by hash"),
    ("vm_codegen", "VM code"), ("kernel_build", "kernel lowering and LLVM IR"), ("link", "linking"),
    ("load", "loading (LLVM machine code, lazily)"), ("time", "timing (stable median)"), ("total", "**total**"),
)


def profile_breakdown() -> str:
    """Where compile time goes: a whole network and a block, cold and with the kernel cache."""
    r = Results("profile_cost.json")
    cfg = r.record("network_cold_total_s")["config"]
    columns = ("network_cold", "block_cold_mean", "block_cached_mean", "network_warm")
    body = [[label, *(f"{r.value(f'{c}_{phase}_s'):.2f}" for c in columns)] for phase, label in BREAKDOWN_PHASES]
    load = cfg["load_average_1min"]
    head = (f"{r.record('network_cold_total_s')['device']}, space `{cfg['space']}`: one random network of "
            f"{cfg['blocks']} blocks (seconds; load average {load[0]:.1f} before, {load[1]:.1f} after: the "
            "machine was shared, absolute times scale with it).\n\n")
    side = r.value("block_side_by_side_mean_export_s") + r.value("block_side_by_side_mean_import_s")
    alone = r.value("block_cold_mean_export_s") + r.value("block_cold_mean_import_s")
    tail = (f"\n\nExport and import of a block alone: {alone:.2f} s; with 8 blocks side by side in one export (as "
            f"the profile compiles a round of blocks): {side:.2f} s per block."
            f"\n\n`tvm.compile` alone on the same network (pipeline and kernels, no export, loading or timing): "
            f"{r.value('network_tvm_compile_plain_s'):.1f} s. The network after its blocks reused "
            f"{cfg['kernels_reused_by_network']} kernels and compiled none: "
            f"**{r.value('network_warm_over_cold'):.2f}x** the cold network's time; a cold network costs "
            f"{r.value('network_cold_over_block_cold'):.1f} cold blocks.")
    return head + _table(["phase", "network, cold", "block, cold (mean)", "block, with the cache (mean)",
                          "network after its blocks"], body) + tail + _source("profile_cost.json")


def profile_noise() -> str:
    """How much one item's timing moves on the shared machine, as timed and drift corrected."""
    r = Results("profile_cost.json")
    rows = [x for x in r.records if x["figure"].startswith("noise_") and x["figure"].endswith("_cv")]
    first = rows[0]["config"]
    body = []
    for clock in ("cpu", "wall"):
        for item in sorted({x["config"]["item"] for x in rows}):
            cells = [f"{r.value(f'noise_{clock}_{label}_{stat}', item=item):.1f} %"
                     for label, stat in (("as_timed", "cv"), ("corrected", "cv"), ("as_timed", "range"),
                                         ("corrected", "range"))]
            body.append([item.replace("_", " "), "thread CPU time" if clock == "cpu" else "elapsed", *cells])
    load = first["load_average_1min"]
    head = (f"{rows[0]['device']}, space `{first['space']}`: each item timed {first['rounds']} times over "
            f"{first['seconds']:.0f} s, each repeat beside a repeat of the reference network (the space's "
            f"smallest); figures over windows of {first['window_repeats']} repeats (one measurement's worth). "
            f"Load average {load[0]:.1f} before, {load[1]:.1f} after.\n\n")
    return head + _table(["item", "clock", "CV as timed", "CV drift corrected", "1-99 % range as timed",
                          "1-99 % range corrected"], body) + _source("profile_cost.json")


PREDICTOR_RUNS = (
    ("predictor_accuracy.json", "10-minute profile (state gated)", 99),
    ("predictor_accuracy_load.json", "10-minute profile, busy loop on the other core (state gated)", 95),
    ("predictor_accuracy_3min.json", "3-minute profile, the quickstart's (before the gate)", 90),
)


def predictor_runs() -> str:
    """The drift-corrected profiles against their targets, side by side."""
    runs = [(Results(name), label, target) for name, label, target in PREDICTOR_RUNS]

    def each(fn: Callable[[Results], str]) -> list[str]:
        return [fn(r) for r, _, _ in runs]

    def noise(r: Results) -> str:
        text = f"{r.value('noise_floor_cv'):.1f} % / {r.value('noise_floor_max_dev'):.1f} %"
        if r.has("noise_floor_uncorrected_cv"):
            text += f" (uncorrected CV {r.value('noise_floor_uncorrected_cv'):.1f} %)"
        return text

    def counts(r: Results) -> str:
        c = r.record("block_sum_within_10pct")["config"]["profile_counts"]
        return (f"{r.value('profile_wall_time'):.1f} min: {c['block']} blocks, {c['train']} training + "
                f"{c['holdout']} held-out networks")

    def load(r: Results) -> str:
        c = r.record("block_sum_within_10pct")["config"]
        prof = c["profile_conditions"].get("load_average_1min", ["?", "?"])
        val = c["validation_load_average_1min"]
        return f"{prof[0]:.1f}-{prof[1]:.1f} / {val[0]:.1f}-{val[1]:.1f}"

    body = [
        ["within ±10 % (block_sum)", *each(lambda r: f"**{r.value('block_sum_within_10pct'):.0f} %**")],
        ["target", *[_target(r.value("block_sum_within_10pct"), ">=", t, "%") for r, _, t in runs]],
        ["within ±5 %", *each(lambda r: f"{r.value('block_sum_within_5pct'):.0f} %")],
        ["MAPE / Spearman", *each(lambda r: f"{r.value('block_sum_mape'):.1f} % / {r.value('block_sum_spearman'):.3f}")],
        ["whole_network predictor: within ±10 %", *each(lambda r: f"{r.value('whole_network_within_10pct'):.0f} %")],
        ["the profile's own held-out figure", *each(
            lambda r: f"{r.value('profile_own_holdout_within_10pct'):.0f} % of "
                      f"{r.record('profile_own_holdout_within_10pct')['config']['n']}"
            if r.has("profile_own_holdout_within_10pct") else "-")],
        ["validation networks", *each(lambda r: str(r.record("block_sum_within_10pct")["config"]["validation_networks"]))],
        ["noise floor CV / max deviation", *each(noise)],
        ["drift range over the profile", *each(lambda r: f"{r.value('drift_range'):.0f} %" if r.has("drift_range") else "-")],
        ["spread within one validation measurement (IQR / median)",
         *each(lambda r: f"{r.value('validation_iqr_over_median'):.1f} %")],
        ["profile", *each(counts)],
        ["load average, profile / validation (1 min, start-end)", *each(load)],
    ]
    first = runs[0][0].record("block_sum_within_10pct")
    head = (f"{first['device']}; space `{first['config']['space']}`, target `{json.dumps(first['config']['target'])}`; "
            "validation networks the profile never measured, compiled and timed end to end the way the profile "
            "measures (same clock, paired with its reference network, corrected to its baseline). The "
            "validation networks are the same archs for the three runs (in their own store; the state-gated run "
            "timed again those its gate found outside the fast state).\n\n")
    return head + _table(["figure", *[label for _, label, _ in runs]], body) + _source(
        *[name for name, _, _ in PREDICTOR_RUNS])


# ---------------------------------------------------------------------------- search


def search_speed() -> str:
    """A new device's search with a warm accuracy cache, per-trial and buffered storage, and a cold cache."""
    r = Results("search_speed.json")
    warm = r.record("warm_time_for_trials")
    trials = warm["config"]["trials"]
    buffered = r.value("warm_buffered_time_for_trials")
    new = r.record("new_device_trials_per_s")
    cold = r.record("cold_subnets_per_s")
    body = [
        [f"warm cache, new device, {trials:,} `mbv3` trials, buffered (now the default on the workspace study)",
         f"{buffered:.1f} s ({r.value('warm_buffered_trials_per_s'):.1f} trials/s), cache hit rate "
         f"{100 * r.value('warm_buffered_cache_hit_rate'):.0f} %", _target(buffered, "<=", 5, "s") + f" ({trials:,} trials, issue 12)"],
    ]
    if r.has("warm_buffered_min_time_for_trials"):
        rep = r.record("warm_buffered_min_time_for_trials")
        rc = rep["config"]
        best = rep["value"]
        body.append([
            f"same, run {rc['runs']} times (each a new study): fastest, median; least CPU time",
            f"{best:.2f} s, {r.value('warm_buffered_median_time_for_trials'):.2f} s; "
            f"{r.value('warm_buffered_min_cpu_time_for_trials'):.2f} CPU s (wall {', '.join(f'{v:.2f}' for v in rc['wall_s'])} s "
            f"at load {', '.join(f'{v:.1f}' for v in rc['load_1min'])})",
            _target(best, "<=", 5, "s") + " (fastest run)"])
    body += [
        ["same, `--no-buffered` (a dozen SQLite writes per trial; the default with `--storage`)",
         f"{warm['value']:.1f} s ({r.value('warm_trials_per_s'):.1f} trials/s), hit rate "
         f"{100 * r.value('warm_cache_hit_rate'):.0f} %", _target(warm["value"], "<=", 60, "s")],
        [f"new device after one other device's {trials:,}-trial search",
         f"{new['value']:.1f} trials/s, hit rate {100 * r.value('new_device_cache_hit_rate'):.1f} % "
         f"({new['config']['evaluated']} of {trials:,} evaluated, {new['config']['eval_s']} s evaluating)", ""],
        ["cold cache: sub-networks evaluated per second (1 thread)",
         f"{cold['value']:.1f} /s ({cold['config']['evaluated']} in {cold['config']['evaluated'] / cold['value']:.1f} s); "
         f"{r.value('cold_trials_per_s'):.1f} trials/s", ""],
    ]
    c = warm["config"]
    head = (f"{warm['device']}, {c['machine']}. Space: {c['space']}; sampler {c['sampler']}, seed {c['seed']}; "
            f"evaluation: {c['eval_data']}; storage: {c['storage']}.\n\n")
    return head + _table(["figure (this CPU)", "measured", "target"], body) + _source("search_speed.json")


def search_scaling() -> str:
    """Workers and Ray trials on one host: trials per second, steady state and launch to exit."""
    r = Results("search_scaling.json")
    body = []
    for label, one, two, ratio in (
        ("PostgreSQL, 1 / 2 workers (default engine)", "postgres_1w", "postgres_2w", "postgres_speedup_2_over_1"),
        ("PostgreSQL, 1 / 2 workers (`--buffered`)", "postgres_buffered_1w", "postgres_buffered_2w",
         "postgres_buffered_speedup_2_over_1"),
        ("Ray local head, 1 / 2 concurrent trials", "ray_1c", "ray_2c", "ray_speedup_2_over_1"),
    ):
        a, b = r.record(f"{one}_trials_per_s"), r.record(f"{two}_trials_per_s")
        body.append([label, f"{a['value']:.1f} / {b['value']:.1f}", f"{r.value(ratio):.2f}x",
                     f"{r.value(one + '_wall_trials_per_s'):.1f} / {r.value(two + '_wall_trials_per_s'):.1f}",
                     f"{a['config']['trials']} / {b['config']['trials']}"])
    c = r.record("postgres_1w_trials_per_s")["config"]
    head = (f"{r.records[0]['device']} ({c['machine']}). Problem: `edgenas search {c['problem']}`, sampler "
            f"{c['sampler']}; workers: {c['workers']}; storage: {c['storage']}. Steady state is the trials over the "
            "span from the first trial's start to the last one's end; launch to exit includes Python start-up and "
            "connecting.\n\n")
    return head + _table(["setup", "trials/s, steady state", "2 over 1", "trials/s, launch to exit", "trials"],
                         body) + _source("search_scaling.json")


NB201_RUNS = (
    ("fewshot", "nsga2", "few-shot predictor, auto margin, NSGA-II (the default before issue 12)"),
    ("fewshot", "screened", "few-shot predictor, auto margin, `screened` (the default now: `auto`)"),
    ("fewshot", "random", "few-shot predictor, auto margin, random"),
    ("exact", "screened", "measured latency (`table:DEVICE`), margin 0, `screened`"),
    ("exact", "nsga2", "measured latency, margin 0, NSGA-II"),
    ("floor", "none", "no search: best of all 15,625 cells by the few-shot predictor, auto margin"),
    ("verified", "screened", "`screened`, margin 0, then up to {verify} winners measured "
                             "(mean {measured:.1f} measured, {fallbacks} fallbacks; table protocol)"),
    ("loop", "screened", "`edgenas search --verify {verify}`: device in the loop, two rounds "
                         "(mean {measured:.1f} measured, {unverified} unverified)"),
    ("suggest", "screened", "`devices suggest -n {verify}`, measured, `import --add`, then search, auto margin "
                            "(predicted pick)"),
)


def search_nb201_protocols() -> str:
    """Regret against the best arch that truly fits, per protocol (13 devices x 3 budgets)."""
    r = Results("search_nb201.json")
    searches = rows("search_nb201_rows.jsonl")
    body = []
    for protocol, sampler, label in NB201_RUNS:
        tag = f"{protocol}_{sampler}"
        sel = [s for s in searches if s["protocol"] == protocol and s["sampler"] == sampler]
        mean = r.value(f"mean_regret_{tag}")
        if abs(mean - statistics.mean(s["regret"] for s in sel)) > 1e-6:
            raise ValueError(f"search_nb201.json and search_nb201_rows.jsonl disagree on {tag}: rerun the benchmark's summary")
        hv = f"{r.value(f'mean_hypervolume_{tag}'):.3f}" if r.has(f"mean_hypervolume_{tag}") else "-"
        zero = 100 * sum(s["regret"] == 0 for s in sel) / len(sel)
        label = label.format(verify=r.records[0]["config"]["verify"],
                             measured=r.value(f"mean_measurements_{tag}") if protocol in ("verified", "loop") else 0,
                             fallbacks=sum(bool(s.get("fallback")) for s in sel),
                             unverified=r.value(f"unverified_{tag}") if protocol == "loop" else 0)
        body.append([label, str(len(sel)), f"{mean:.2f}", f"{r.value(f'max_regret_{tag}'):.2f}", f"{zero:.0f} %",
                     str(r.value(f"violations_{tag}")), hv, f"{r.value(f'mean_seconds_{tag}'):.0f}"])
    c = r.records[0]["config"]
    head = (f"{len(c['devices'])} devices x budgets at the {', '.join(map(str, c['percentiles']))}th percentiles of "
            f"each device's true latencies, {c['trials']} trials per search, {c['samples']} measurements per device; "
            f"accuracy: {c['accuracy']}; engine: {c['engine']}.\n\n")
    return head + _table(["protocol", "searches", "mean regret", "max regret", "regret = 0", "violations",
                          "hypervolume", "s/search"], body) + _source("search_nb201.json", "search_nb201_rows.jsonl")


def search_nb201_devices() -> str:
    """Mean regret per device (over its three budgets) for five protocols, the device in the
    loop's mean measurements, and the auto margin used."""
    searches = rows("search_nb201_rows.jsonl")
    by: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in searches:
        by[(s["device"], s["protocol"], s["sampler"])].append(s)
    body = []
    for device in sorted({s["device"] for s in searches}):
        def mean(protocol: str, sampler: str, key: str = "regret", device: str = device) -> float:
            return statistics.mean(s[key] for s in by[(device, protocol, sampler)])
        loop = by[(device, "loop", "screened")]
        body.append([device, f"{mean('floor', 'none'):.2f}", f"{mean('fewshot', 'screened'):.2f}",
                     f"{mean('fewshot', 'nsga2'):.2f}", f"{mean('exact', 'screened'):.2f}",
                     f"{mean('loop', 'screened'):.2f} ({statistics.mean(s['measured'] for s in loop):.1f})"
                     if loop else "-",
                     f"{mean('fewshot', 'screened', 'margin'):.3f}"])
    return _table(["device", "floor", "few-shot screened", "few-shot NSGA-II", "exact screened",
                   "loop (measurements)", "auto margin"], body) + _source("search_nb201_rows.jsonl")


# --------------------------------------------------------------- NAS-Bench-201 few-shot


def _fewshot() -> Results:
    return Results("fewshot_nb201.json")


def _fs(r: Results, method: str, protocol: str, n: int, figure: str, device: str = "mean") -> float:
    return r.value(figure, device=device, method=method, protocol=protocol, n_samples=n)


def fewshot_mean() -> str:
    """Mean over the devices of Spearman's rho / share within ±10 %, per method, protocol and sample count."""
    r = _fewshot()
    ns = sorted({x["config"]["n_samples"] for x in r.records if x["config"]["method"] == "additive"})
    ceiling_n = r.record("spearman", device="mean", method="ceiling_additive")["config"]["n_samples"]

    def cell(method: str, protocol: str, n: int) -> str:
        if not r.has("spearman", device="mean", method=method, protocol=protocol, n_samples=n):
            return ""
        return f"{_fs(r, method, protocol, n, 'spearman'):.3f} / {_fs(r, method, protocol, n, 'within_10pct'):.3f}"

    body = []
    for method, label in (("additive", "additive (production)"), ("additive_counts", "op counts only (previous)"),
                          ("transfer", "transfer"), ("ridge", "ridge"), ("flops", "flops"),
                          ("additive_help10", "additive on HELP's 10 cells"), ("ridge_help10", "ridge on HELP's 10 cells")):
        if not any(x["config"]["method"] == method for x in r.records):
            continue
        for protocol in ("loose", "strict"):
            body.append([label, protocol, *(cell(method, protocol, n) for n in ns), ""])
    for method, label in (("ceiling_additive", "additive"), ("ceiling_counts", "op counts only")):
        if any(x["config"]["method"] == method for x in r.records):
            body.append([f"ceiling: {label} fitted on all {ceiling_n:,} connected cells", "-", *([""] * len(ns)),
                         cell(method, "loose", ceiling_n)])
    seeds = next(x["config"]["seeds"] for x in r.records if "seeds" in x["config"])
    devices = r.record("spearman", device="mean", method="additive", protocol="loose", n_samples=ns[0])["config"]["devices"]
    head = f"Mean over the {devices} devices (Spearman rho / share within ±10 %), {seeds} seeds where random.\n\n"
    return head + _table(["method", "protocol", *(f"n={n}" for n in ns), f"all {ceiling_n:,}"], body) + _source(
        "fewshot_nb201.json")


def fewshot_devices() -> str:
    """Per device: additive against the previous op-count model, the ridge baseline (strict), FLOPs, and the
    additive model's ceiling."""
    r = _fewshot()
    devices = list(dict.fromkeys(x["device"] for x in r.records if x["device"] != "mean"))
    ceiling_n = r.record("spearman", device="mean", method="ceiling_additive")["config"]["n_samples"]
    def counts(n: int, figure: str, d: str) -> str:  # results files before the production change lack it
        if not r.has(figure, device=d, method="additive_counts", protocol="loose", n_samples=n):
            return "-"
        return f"{_fs(r, 'additive_counts', 'loose', n, figure, d):.3f}"

    body = [[d, f"{_fs(r, 'additive', 'loose', 10, 'spearman', d):.3f}",
             f"{_fs(r, 'additive', 'loose', 20, 'within_10pct', d):.3f}",
             counts(10, "spearman", d), counts(20, "within_10pct", d),
             f"{_fs(r, 'ridge', 'strict', 10, 'spearman', d):.3f}",
             f"{_fs(r, 'ridge', 'strict', 20, 'within_10pct', d):.3f}",
             f"{_fs(r, 'flops', 'loose', 10, 'spearman', d):.3f}",
             f"{_fs(r, 'ceiling_additive', 'loose', ceiling_n, 'spearman', d):.3f} / "
             f"{_fs(r, 'ceiling_additive', 'loose', ceiling_n, 'within_10pct', d):.3f}"] for d in devices]
    return _table(["device", "additive rho@10", "additive ±10%@20", "counts rho@10", "counts ±10%@20",
                   "ridge rho@10", "ridge ±10%@20", "flops rho", "additive, all cells"], body) + _source(
        "fewshot_nb201.json")


def fewshot_targets() -> str:
    """The two few-shot targets, judged on the mean over devices."""
    r = _fewshot()
    rho10 = _fs(r, "additive", "loose", 10, "spearman")
    w20 = _fs(r, "additive", "loose", 20, "within_10pct")
    w50 = _fs(r, "additive", "loose", 50, "within_10pct")
    return _table(["target", "additive, measured", "verdict"], [
        ["mean Spearman rho >= 0.97 with 10 samples", f"{rho10:.3f}", _target(rho10, ">=", 0.97)],
        ["within ±10 % >= 85 % with 20 samples", f"{100 * w20:.1f} % (with 50: {100 * w50:.1f} %)",
         _target(100 * w20, ">=", 85, "%")],
    ]) + _source("fewshot_nb201.json")


# ------------------------------------------------------------------------- adaptation

ADAPT_NAMES = {"mnist1d": "MNIST-1D", "digits": "digits", "nebula": "Nebula", "no_adaptation": "no adaptation",
               "local_only": "local only", "fedavg": "FedAvg", "heterofl": "HeteroFL"}
ADAPT_METHODS = ("nebula", "no_adaptation", "local_only", "fedavg", "heterofl")
SCENARIOS = ("one_step", "continuous")


def _cases(r: Results) -> list[tuple[str, int]]:
    """(dataset, skew) pairs with both scenarios, modular decomposition, in file order."""
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for x in r.records:
        c = x["config"]
        if c["decomposition"] == "modular":
            seen[(c["dataset"], c["classes_per_device"])].add(c["scenario"])
    return [k for k, v in seen.items() if set(SCENARIOS) <= v]


def adapt_methods() -> str:
    """Accuracy, bytes and training memory per method (modular decomposition, both scenarios)."""
    r = Results("adapt.json")
    body = []
    for dataset, skew in _cases(r):
        for method in ADAPT_METHODS:
            def v(scenario: str, key: str, method: str = method, dataset: str = dataset, skew: int = skew) -> float:
                return r.value(f"{dataset}/m{skew}/{scenario}/{method}/{key}")
            if not r.has(f"{dataset}/m{skew}/one_step/{method}/accuracy_final"):
                continue
            body.append([ADAPT_NAMES[dataset], f"{skew} of 10", ADAPT_NAMES[method],
                         f"{v('one_step', 'accuracy_final'):.1f}", f"{v('continuous', 'accuracy_final'):.1f}",
                         f"{v('one_step', 'accuracy_final_after_training'):.1f}",
                         f"{v('continuous', 'accuracy_final_after_training'):.1f}",
                         f"{v('one_step', 'bytes_per_device_round') / 1e3:.1f} / "
                         f"{v('continuous', 'bytes_per_device_round') / 1e3:.1f}",
                         f"{v('one_step', 'peak_memory_bytes_mean'):.2f}"])
    return _table(["data", "skew", "method", "one-step: acc (%)", "continuous: acc (%)",
                   "one-step: acc after local training (%)", "continuous: acc after local training (%)",
                   "KB per device-round (one-step / continuous)", "train memory (MB)"], body) + _source("adapt.json")


def _margin_row(r: Results, prefix: str) -> tuple[float, str, float, float | None, int]:
    m = r.record(f"{prefix}/nebula_margin_over_best_baseline")
    heterofl = r.value(f"{prefix}/comm_reduction_vs_heterofl") if r.has(f"{prefix}/comm_reduction_vs_heterofl") else None
    return (m["value"], m["config"]["best_baseline"], r.value(f"{prefix}/comm_reduction_vs_fedavg"), heterofl,
            r.value(f"{prefix}/nebula/rounds_to_target"))


def adapt_margins() -> str:
    """Nebula against its best baseline, communication ratios, and rounds to the target accuracy."""
    r = Results("adapt.json")
    target = r.record("mnist1d/m2/one_step/nebula/rounds_to_target")["config"]["target_accuracy"]
    body = []
    for dataset, skew in _cases(r):
        for scenario in SCENARIOS:
            margin, best, fedavg, heterofl, reach = _margin_row(r, f"{dataset}/m{skew}/{scenario}")
            body.append([ADAPT_NAMES[dataset], f"{skew} of 10", scenario.replace("_", "-"), f"{margin:+.1f}",
                         ADAPT_NAMES[best], f"{fedavg:.2f}x", f"{heterofl:.2f}x" if heterofl is not None else "-",
                         "not reached" if reach < 0 else str(reach)])
    return _table(["data", "skew", "scenario", "Nebula margin over best baseline (points)", "best baseline",
                   "comm. vs FedAvg", "comm. vs HeteroFL", f"rounds to {target:g} % (Nebula)"], body) + _source("adapt.json")


def adapt_targets() -> str:
    """The three adaptation targets, counted over the modular cases."""
    r = Results("adapt.json")
    rows_ = [_margin_row(r, f"{d}/m{s}/{sc}") for d, s in _cases(r) for sc in SCENARIOS]
    n = len(rows_)
    margins = [x[0] for x in rows_]
    fedavg = [x[2] for x in rows_]
    heterofl = [x[3] for x in rows_ if x[3] is not None]
    return _table(["target", "met in", "range"], [
        ["better accuracy than every baseline", f"{sum(m > 0 for m in margins)} of {n}",
         f"{min(margins):+.1f} to {max(margins):+.1f} points"],
        [">= 4.6x less communication than FedAvg", f"{sum(x >= 4.6 for x in fedavg)} of {n}",
         f"{min(fedavg):.2f}x to {max(fedavg):.2f}x"],
        [">= 2.76x less communication than HeteroFL", f"{sum(x >= 2.76 for x in heterofl)} of {len(heterofl)}",
         f"{min(heterofl):.2f}x to {max(heterofl):.2f}x"],
    ]) + _source("adapt.json")


def adapt_elastic() -> str:
    """The small run of the elastic (mbv3 supernet) decomposition."""
    r = Results("adapt.json")
    prefix = "digits/m2/one_step/elastic"
    body = []
    for method in ADAPT_METHODS:
        if not r.has(f"{prefix}/{method}/accuracy_final"):
            continue
        body.append([ADAPT_NAMES[method], f"{r.value(f'{prefix}/{method}/accuracy_final'):.1f}",
                     f"{r.value(f'{prefix}/{method}/accuracy_final_after_training'):.1f}",
                     f"{r.value(f'{prefix}/{method}/bytes_per_device_round') / 1e3:.1f}",
                     f"{r.value(f'{prefix}/{method}/modules_per_device_mean'):.1f}"])
    c = r.record(f"{prefix}/nebula/accuracy_final")["config"]
    margin, best, fedavg, _, _ = _margin_row(r, prefix)
    tail = (f"\n\n{c['rounds']} rounds. Nebula sends {fedavg:.2f}x less than FedAvg and leads the best baseline "
            f"({ADAPT_NAMES[best]}) by {margin:+.1f} points. HeteroFL is not defined for this decomposition.")
    return _table(["elastic (mbv3), digits, 2 of 10, one-step", "acc (%)", "acc after local training (%)",
                   "KB per device-round", "blocks per device"], body) + tail + _source("adapt.json")


SIDE_RUNS = (
    ("adapt.json", "main table"),
    ("adapt_min_importance_0.3.json", "`--min-importance 0.3`"),
    ("adapt_budget_0.3.json", "`--budget-low 0.3`"),
    ("adapt_e5.json", "5 local epochs (before the batch-norm fix)"),
)


def adapt_side_runs() -> str:
    """Side runs of the 2-of-10 one-step cases against the main table."""
    body = []
    for name, label in SIDE_RUNS:
        r = Results(name)
        for dataset in ("mnist1d", "digits"):
            prefix = f"{dataset}/m2/one_step"
            if not r.has(f"{prefix}/nebula/accuracy_final"):
                continue
            margin, best, fedavg, heterofl, _ = _margin_row(r, prefix)
            body.append([label, ADAPT_NAMES[dataset], f"{r.value(f'{prefix}/nebula/accuracy_final'):.1f}",
                         f"{r.value(f'{prefix}/{best}/accuracy_final'):.1f} ({ADAPT_NAMES[best]})",
                         f"{fedavg:.2f}x", f"{heterofl:.2f}x" if heterofl is not None else "-",
                         f"{r.value(f'{prefix}/nebula/modules_per_device_mean'):.1f}", f"`{name}`"])
    return _table(["run", "data", "Nebula acc (%)", "best baseline acc (%)", "comm. vs FedAvg", "comm. vs HeteroFL",
                   "modules per device", "file"], body) + "\n\n*Generated from the files named in the last column.*"


# ------------------------------------------------------------------ split inference


def split_inference() -> str:
    """Split inference: predicted against measured end-to-end latency (raw on the wall and CPU
    clocks, and drift corrected with each side's reference network), and the planner's choice
    against edge only and cloud only, measured over the same links."""
    r = Results("split_inference.json")
    cases = r.record("cases")
    c = cases["config"]
    clocks = ("wall", "cpu_clock", "drift_corrected")

    def within(clock: str, suffix: str = "", bold: bool = False) -> str:
        value = f"{r.value(f'e2e_within_10pct_{clock}{suffix}'):.0f} %"
        return (f"**{value}**" if bold else value) + f" (MAPE {r.value(f'e2e_mape_{clock}{suffix}'):.1f} %)"

    def count(suffix: str) -> str:
        return f" ({r.record(f'e2e_within_10pct_cpu_clock{suffix}')['config']['cases']} cases)"

    targets = [_target(r.value(f"e2e_within_10pct_{k}"), ">=", 90, "%") + f" ({name})"
               for k, name in (("drift_corrected", "drift corrected"), ("cpu_clock", "CPU clock"), ("wall", "wall"))]
    body = [
        [f"cases within ±10 % ({cases['value']} cases: {len(c['archs'])} archs x points x {len(c['links'])} links)",
         *(within(k, bold=True) for k in clocks), "; ".join(targets)],
        [f"of which inner splits (both devices compute){count('_inner_splits')}",
         *(within(k, "_inner_splits") for k in clocks), ""],
        [f"of which edge only{count('_edge_only')}", *(within(k, "_edge_only") for k in clocks), ""],
        [f"of which cloud only{count('_cloud_only')}", *(within(k, "_cloud_only") for k in clocks), ""],
        ["the same cases, each part corrected as a network of its own (`--correction per_part`)", "",
         f"{r.value('e2e_within_10pct_cpu_clock_correction_per_part'):.0f} %", "", ""],
        ["the same cases, no correction (`--correction none`)", "",
         f"{r.value('e2e_within_10pct_cpu_clock_correction_none'):.0f} %", "", ""],
    ]
    drift = []
    for side in ("edge", "cloud"):
        if r.has(f"{side}_drift_median"):
            d = r.record(f"{side}_drift_median")
            drift.append(f"{side} {d['value']:.2f}x (cases {d['config']['min']:.2f}-{d['config']['max']:.2f}x)")
    drift_line = ("\n\nEach side's reference network timed beside the requests, over its baseline (median over "
                  "cases): " + ", ".join(drift) + "; above 1x: slower than when the profile was calibrated."
                  if drift else "")
    head = (f"{cases['device']}. Space `{c['space']['name']}/{c['space'].get('preset')}` "
            f"(resolution {c['space']['config']['resolutions']}), activations sent as {c['precision']}, "
            f"{c['requests']} timed requests per case (median), links {', '.join(c['links'])}; load average "
            f"{c['load_avg_before'][0]:.1f} before, {c['load_avg_after'][0]:.1f} after; {c['wall_s'] / 60:.0f} min.\n\n")
    accuracy = head + _table(["figure", "raw, wall clock", "raw, compute on each side's CPU clock",
                              "drift corrected (each side's reference network)", "target"], body) + drift_line
    pairs = r.record("speedup_vs_cloud_only_mean")["config"]
    neuro = pairs["neurosurgeon"]
    body = [
        ["chosen split against cloud only (mean / max)",
         f"**{r.value('speedup_vs_cloud_only_mean'):.2f}x** / {r.value('speedup_vs_cloud_only_max'):.2f}x",
         f"{neuro['speedup_vs_cloud_only_mean']}x / {neuro['speedup_vs_cloud_only_max']}x"],
        ["chosen split against edge only (mean / max)",
         f"**{r.value('speedup_vs_edge_only_mean'):.2f}x** / {r.value('speedup_vs_edge_only_max'):.2f}x", "-"],
        ["chosen split against the fastest point measured (1.00x: never worse)",
         f"{r.value('chosen_vs_best_measured_mean'):.3f}x", "-"],
        ["(arch, link) pairs where the planner splits inside the network",
         f"{r.value('chosen_is_inner_split')} of {r.record('chosen_is_inner_split')['config']['of']}", ""],
        ["... and the inner split measured faster than both edge only and cloud only",
         f"{r.value('inner_split_beats_both_ends')} of {r.record('inner_split_beats_both_ends')['config']['of']}", ""],
    ]
    speed = _table([f"speed-up, measured ({pairs['pairs']} (arch, link) pairs)", "this machine",
                    "Neurosurgeon (paper)"], body)
    return accuracy + "\n\n" + speed + _source("split_inference.json", "split_inference_cases.jsonl")


def split_search() -> str:
    """Joint search against search-for-the-edge-then-split, best accuracy within end-to-end budgets."""
    r = Results("split_search.json")
    first = r.record("front_sizes")
    c = first["config"]
    joint = {x["config"]["e2e_budget_ms"]: x["value"] for x in r.records if x["figure"] == "joint_accuracy_at_budget"}
    then = {x["config"]["e2e_budget_ms"]: x["value"]
            for x in r.records if x["figure"] == "edge_then_split_accuracy_at_budget"}

    def pct(v: float) -> str:
        return "-" if v != v else f"{v:.2f}"

    body = [[f"{b:.2f}", pct(joint[b]), pct(then[b]), "-" if joint[b] != joint[b] or then[b] != then[b]
             else f"{joint[b] - then[b]:+.2f}"] for b in sorted(joint)]
    head = (f"{first['device']}; link {c['link']}, {c['trials']} trials each (NSGA-II, seed 0), fronts of "
            f"{len(c['joint_front'])} (joint) and {len(c['edge_then_split_front'])} (edge, then split) archs; "
            f"{r.value('joint_front_split_inside')} of the joint front split inside the network. Mean gain "
            f"{r.value('accuracy_gain_mean'):+.2f} points.\n\n")
    return head + _table(["end-to-end budget (ms, predicted)", "joint search: best accuracy %",
                          "edge search, then split: best accuracy %", "gain (points)"], body) + _source("split_search.json")


def split_cascade() -> str:
    """The cascade: edge only, cloud only and the chosen threshold, per link, measured."""
    r = Results("split_cascade.json")
    body = []
    for x in (x for x in r.records if x["figure"] == "edge_only_accuracy"):
        link = x["config"]["link"]
        device = x["device"]
        rec = {y["figure"]: y["value"] for y in r.records if y["device"] == device}
        body.append([link, "edge only", f"{rec['edge_only_accuracy']:.2f}", f"{rec['edge_only_mean_ms']:.2f}",
                     f"{rec['edge_only_p95_ms']:.2f}", "0 %"])
        body.append([link, "cloud only", f"{rec['cloud_only_accuracy']:.2f}", f"{rec['cloud_only_mean_ms']:.2f}",
                     f"{rec['cloud_only_p95_ms']:.2f}", "100 %"])
        if "chosen_threshold" in rec:
            body.append([link, f"cascade, threshold {rec['chosen_threshold']:.3f} (per-image sums)",
                         f"{rec['chosen_accuracy']:.2f}", f"{rec['chosen_mean_ms']:.2f}", f"{rec['chosen_p95_ms']:.2f}",
                         f"{100 * rec['chosen_offloaded']:.0f} %"])
        if "chosen_run_accuracy" in rec:
            body.append([link, "the same threshold, run for real", f"{rec['chosen_run_accuracy']:.2f}",
                         f"{rec['chosen_run_mean_ms']:.2f}", f"{rec['chosen_run_p95_ms']:.2f}",
                         f"{100 * rec['chosen_run_offloaded']:.0f} %"])
    first = r.record("edge_only_accuracy", link=r.records[0]["config"]["link"])
    c = first["config"]
    goal = next((x["config"]["goal"] for x in r.records if x["figure"] == "chosen_threshold"), "none")
    head = (f"{first['device'].split(', link')[0]}; {c['images']} validation images; the edge runs "
            f"`{json.dumps(c['edge_arch'], separators=(',', ':'))}`, the cloud the largest network; threshold "
            f"chosen for {goal}.\n\n")
    return head + _table(["link", "policy", "accuracy %", "mean ms", "p95 ms", "offloaded"], body) + _source(
        "split_cascade.json")


def split_speculative() -> str:
    """Speculative decoding: edge only, cloud only and edge-draft/cloud-verify per RTT, measured and predicted."""
    r = Results("split_speculative.json")
    alpha = r.record("alpha_estimate")
    c = alpha["config"]
    body, sweep = [], []
    for x in (x for x in r.records if x["figure"].startswith("acceptance@")):
        label = x["config"]["link"]
        k = x["config"]["draft_length"]
        for mode, name in (("edge_only", "edge only (the draft alone)"), ("cloud_only", "cloud only (streamed)"),
                           ("speculative", f"edge drafts, cloud verifies (k = {k})")):
            tps, first = r.record(f"{mode}_tokens_per_s@{label}"), r.record(f"{mode}_ttft_ms@{label}")
            accept = (f"{x['value']:.3f} (alpha {x['config']['alpha_measured']:.3f})" if mode == "speculative"
                      else "")
            body.append([label, name, f"{tps['value']:.0f}", f"{tps['config']['predicted_tokens_per_s']:.0f}",
                         f"{first['value']:.1f}", f"{first['config']['predicted_ttft_ms']:.1f}", accept])
        ratio = r.value(f"speculative_over_cloud_only@{label}")
        row = [label, str(k), f"{r.value(f'speculative_tokens_per_s@{label}'):.0f}", f"{ratio:.2f}x"]
        for n in (1, 4, 16):
            if r.has(f"speculative_tokens_per_s@{label}/k={n}"):
                row.append(f"{r.value(f'speculative_tokens_per_s@{label}/k={n}'):.0f}")
        sweep.append(row)
    same = r.record("identical_greedy_output")
    head = (f"{alpha['device']}. Draft `{c['draft']}`, verifier `{c['verifier']}` (gpt tiny, "
            f"`train_gpt_tiny.yaml`, one thread); {c['prompts']} validation prompts of {c['prompt_tokens']} bytes, "
            f"{c['tokens']} bytes written after each. Acceptance rate estimated {alpha['value']:.3f} on the verifier's "
            f"greedy continuations ({alpha['config']['alpha_on_prompts']:.3f} on the prompts' own text); costs "
            f"{r.records[1]['config']['costs']['cloud_source'].split(':')[0]}. Every cloud-side output identical to "
            f"the cloud model's greedy output: {'yes' if same['value'] == 1.0 else 'NO'}; the edge-only text agrees "
            f"with it on {100 * same['config']['edge_only_agreement']:.0f} % of bytes.\n\n")
    return (head + _table(["link", "way", "tokens/s", "predicted", "first token ms", "predicted", "acceptance"], body)
            + "\n\nThe planner's draft length against fixed ones (speculative tokens/s, measured):\n\n"
            + _table(["link", "planner's k", "tokens/s", "over cloud only", "k = 1", "k = 4", "k = 16"], sweep)
            + _source("split_speculative.json"))


TABLES: dict[str, Callable[[], str]] = {fn.__name__: fn for fn in (
    supernet_gpu, supernet_cpu, gpt_rank_fidelity, gpt_throughput_cpu, gpt_predictor_accuracy, predictor_quiet, predictor_loaded,
    profile_cost_replay_before, profile_cost_replay, profile_breakdown, profile_noise, predictor_runs, search_speed,
    search_scaling, search_nb201_protocols, search_nb201_devices, fewshot_mean, fewshot_devices, fewshot_targets,
    adapt_methods, adapt_margins, adapt_targets, adapt_elastic, adapt_side_runs, split_inference, split_search,
    split_cascade, split_speculative,
)}
"""Every table a page may name in a ``<!-- table: NAME -->`` marker."""
