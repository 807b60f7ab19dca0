"""``edgenas devices``: the profiled devices, their validation figures, and imports.

Examples::

    edgenas devices list
    edgenas devices show laptop
    edgenas devices import pixel7 --space nb201 --measurements pixel7.csv
    edgenas devices suggest pixel7 --budget 20 -n 5 --out todo.csv
    edgenas devices import pixel7 --add --measurements todo.csv

An imported CSV has the columns ``arch`` (arch JSON; for nb201 also the cell string or
index), ``latency_ms`` and optionally ``energy_mj``. A name that exists is refused unless
``--replace`` (the old profile is kept as a backup beside the new one) or ``--add`` (the
rows join its measurements; rows without a latency are skipped, an arch already stored
is never stored twice). ``suggest`` writes the archs whose measurement would refine the
predictor most at a budget, with an empty ``latency_ms`` column to fill on the device.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nas.commands._args import add_out, add_quiet, add_workspace, positive_int

SAVES_PROGRESS = False


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "devices",
        help="list, show or import device profiles",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="devices with their validation figures")
    show = sub.add_parser("show", help="one device's profile: identity, how measured, figures")
    show.add_argument("name", help="device name")
    imp = sub.add_parser("import", help="a device measured elsewhere (CSV: arch, latency_ms[, energy_mj])")
    imp.add_argument("name", help="name the device is stored under (letters, digits, -_.)")
    imp.add_argument("--space", help="search space of the archs in the CSV (required unless --add)")
    imp.add_argument("--preset", default=None, help="space preset (default for mbv3: small)")
    imp.add_argument("--measurements", required=True, metavar="FILE.csv", help="the measured archs")
    mode = imp.add_mutually_exclusive_group()
    mode.add_argument("--replace", action="store_true",
                      help="replace an existing device of this name (its profile is kept as a backup)")
    mode.add_argument("--add", action="store_true",
                      help="add the rows to an imported device and refit its predictor (rows without a "
                      "latency_ms are skipped; archs already stored are not stored again)")
    sug = sub.add_parser("suggest", help="archs to measure next on an imported device, near a latency budget")
    sug.add_argument("name", help="device name (an imported device, or any profiled one)")
    sug.add_argument("--budget", type=float, required=True, metavar="MS", help="the latency budget, in ms")
    sug.add_argument("-n", type=positive_int("-n"), default=5, metavar="K", help="how many archs (default 5)")
    add_out(sug, "the CSV to fill: arch, latency_ms (empty), and what each was chosen on", required=True)
    sug.add_argument("--study", metavar="NAME", help="take the candidates from this search's trials "
                     "(default: search the device at the budget here, resumed when it ran before)")
    sug.add_argument("--storage", metavar="URL", help="the study's storage (default: workspace studies.db)")
    sug.add_argument("--checkpoint", metavar="DIR", help="trained supernet, for spaces other than nb201")
    sug.add_argument("--trials", type=positive_int("--trials"), default=300,
                     help="trials of that search (default 300)")
    add_quiet(p, (listing, show, imp, sug))
    add_workspace(p, (listing, show, imp, sug))
    return p


def run(args: argparse.Namespace) -> int:
    from nas.workspace import Workspace

    workspace = Workspace.resolve(args.workspace)
    if args.action == "list":
        return _list(workspace)
    if args.action == "show":
        print(json.dumps(workspace.load_profile(args.name).to_json(), indent=2, sort_keys=True))
        return 0
    if args.action == "suggest":
        return _suggest(workspace, args)
    if args.add:
        return _add(workspace, args)
    from nas.devices import import_device

    profile, rows = import_device(workspace, args.name, args.space, args.measurements, preset=args.preset,
                                  replace=args.replace, progress=not args.quiet)
    f = profile.validation.get(profile.predictor, {})
    line = f"imported {rows} measurements of {args.name!r} ({profile.space['name']}); predictor {profile.predictor}"
    if "within_10pct" in f:
        line += f"; cross-validated: {_pct(f['within_10pct'])} within ±10%, Spearman {f['spearman']:.3f}"
    print(line)
    return 0


def _add(workspace: Any, args: argparse.Namespace) -> int:
    from nas.devices import add_measurements

    done = add_measurements(workspace, args.name, args.measurements, args.space, preset=args.preset,
                            progress=not args.quiet)
    notes = [f"{n} {what}" for n, what in ((done.duplicates, "already stored"),
                                          (len(done.conflicts), "already stored with another value (kept)"),
                                          (done.blank, "without latency_ms (skipped)")) if n]
    line = f"added {done.added} measurements to {args.name!r}" + (f" ({', '.join(notes)})" if notes else "")
    if done.added:
        p = done.profile
        f = p.validation.get(p.predictor, {})
        line += f"; predictor {p.predictor} refitted on {p.counts.get('import', 0)} rows"
        if "within_10pct" in f:
            line += f"; cross-validated: {_pct(f['within_10pct'])} within ±10%, Spearman {f['spearman']:.3f}"
    else:
        line += "; nothing new, the predictor is unchanged"
    print(line)
    return 0


def _suggest(workspace: Any, args: argparse.Namespace) -> int:
    from nas.devices import suggest_measurements, write_todo

    picks = suggest_measurements(workspace, args.name, args.budget, args.n, study=args.study, storage=args.storage,
                                 checkpoint=args.checkpoint, trials=args.trials, quiet=args.quiet)
    if not picks:
        print(f"nothing to suggest for {args.name!r} at {args.budget:g} ms: no unmeasured arch is likely "
              "to fit and be more accurate than the best safe one")
        return 0
    path = write_todo(args.out, picks, workspace.load_profile(args.name).build_space())
    print(f"wrote {len(picks)} archs to measure on {args.name!r} to {path} (fill latency_ms, then "
          f"`edgenas devices import {args.name} --add --measurements {path}`):")
    for s in picks:
        print(f"  accuracy {s.accuracy:.2f} | predicted {s.predicted_ms:.4g} ms | fits with p={s.chance:.2f}")
    return 0


def _list(workspace: Any) -> int:
    from nas.devices import list_devices

    profiles = list_devices(workspace)
    if not profiles:
        print(f"no device profiles in {workspace.root}; run `edgenas profile` or `edgenas devices import`")
        return 0
    print(f"{'device':<20} {'space':<8} {'reached':<10} {'backend':<8} {'schedule':<16} {'predictor':<14} "
          f"{'n':>4} {'±10%':>6} {'MAPE%':>6} {'rho':>6} {'CV%':>5} {'maxdev%':>7} {'drift%':>6}")
    for p in profiles:
        f = p.validation.get(p.predictor, {})
        noise = p.noise_floor or {}
        print(
            f"{p.name:<20} {p.space.get('name', '?'):<8} {p.reached.get('kind', '?'):<10} {p.backend:<8} "
            f"{p.schedule_label:<16} {p.predictor:<14} {f.get('n', 0):>4} {_pct(f.get('within_10pct')):>6} "
            f"{_num(f.get('mape_pct')):>6} {_num(f.get('spearman'), 3):>6} {_num(noise.get('cv_pct')):>5} "
            f"{_num(noise.get('max_rel_dev_pct')):>7} {_num(noise.get('drift_range_pct'), 0):>6}"
        )
    print("±10%: held-out networks predicted within ±10%; CV%, maxdev%: noise floor (one network timed "
          "again over the profile); drift%: how far the machine's speed moved (corrected for)")
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
