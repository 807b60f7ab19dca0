"""``edgenas devices``: the profiled devices, their validation figures, and imports.

Examples::

    edgenas devices list
    edgenas devices show laptop
    edgenas devices import pixel7 --space nb201 --measurements pixel7.csv

An imported CSV has the columns ``arch`` (arch JSON; for nb201 also the cell string or
index), ``latency_ms`` and optionally ``energy_mj``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError
from nas.workspace import (
    add_workspace_argument,
    device_names,
    measurements_url,
    profile_path,
    profiles_dir,
    workspace_dir,
)


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
    show.add_argument("name")
    imp = sub.add_parser("import", help="a device measured elsewhere (CSV: arch, latency_ms[, energy_mj])")
    imp.add_argument("name")
    imp.add_argument("--space", required=True, help="search space of the archs in the CSV")
    imp.add_argument("--preset", default=None, help="space preset (default for mbv3: small)")
    imp.add_argument("--measurements", required=True, metavar="FILE.csv")
    add_workspace_argument(p, (listing, show, imp))
    return p


def run(args: argparse.Namespace) -> int:
    workspace = workspace_dir(args.workspace)
    if args.action == "list":
        return _list(workspace)
    if args.action == "show":
        print(json.dumps(load_profile(workspace, args.name).to_json(), indent=2, sort_keys=True))
        return 0
    return _import(args, workspace)


def load_profile(workspace: Path, name: str) -> Any:
    from latency_predictors.device_profile import DeviceProfile

    path = profile_path(workspace, name)
    if not path.is_file():
        known = device_names(workspace)
        raise EdgenasError(
            f"no device {name!r} in {workspace} (known: {', '.join(known) or 'none'}); "
            f"create it with `edgenas profile --device {name} ...` or `edgenas devices import {name} ...`"
        )
    return DeviceProfile.load(path)


def _list(workspace: Path) -> int:
    from latency_predictors.device_profile import DeviceProfile

    paths = [profile_path(workspace, n) for n in device_names(workspace)]
    if not paths:
        print(f"no device profiles in {workspace}; run `edgenas profile` or `edgenas devices import`")
        return 0
    header = f"{'device':<20} {'space':<8} {'reached':<10} {'backend':<8} {'schedule':<16} {'predictor':<14} " \
             f"{'n':>4} {'±10%':>6} {'MAPE%':>6} {'rho':>6} {'noise%':>7}"
    print(header)
    for path in paths:
        p = DeviceProfile.load(path)
        f = p.validation.get(p.predictor, {})
        noise = (p.noise_floor or {}).get("cv_pct")
        print(
            f"{p.name:<20} {p.space.get('name', '?'):<8} {p.reached.get('kind', '?'):<10} {p.backend:<8} "
            f"{p.schedule_label:<16} {p.predictor:<14} {f.get('n', 0):>4} {_pct(f.get('within_10pct')):>6} "
            f"{_num(f.get('mape_pct')):>6} {_num(f.get('spearman'), 3):>6} {_num(noise):>7}"
        )
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _import(args: argparse.Namespace, workspace: Path) -> int:
    from latency_predictors.csv_import import read_measurements_csv
    from latency_predictors.device_import import import_device
    from latency_predictors.measurements import MeasurementStore
    from nas.commands.profile import build_space

    space = build_space(args.space, args.preset)
    rows = read_measurements_csv(args.measurements, space)
    store = MeasurementStore(measurements_url(workspace))
    profile = import_device(args.name, space, rows, store, profiles_dir(workspace), str(args.measurements))
    f = profile.validation.get(profile.predictor, {})
    line = f"imported {len(rows)} measurements of {args.name!r} ({profile.space['name']}); predictor {profile.predictor}"
    if "within_10pct" in f:
        line += f"; cross-validated: {_pct(f['within_10pct'])} within ±10%, Spearman {f['spearman']:.3f}"
    print(line)
    return 0
