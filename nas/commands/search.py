"""``edgenas search``: the Pareto front of sub-networks for one or more devices under budgets.

Example::

    edgenas search --space nb201 --device pixel3 --max-latency-ms 20 --trials 300 --out result.json
    edgenas search --space mbv3 --checkpoint runs/digits_small --device laptop \\
        --max-latency-ms 5 --storage postgresql://edgenas@db/edgenas --engine ray --ray-address auto

Run the same command again to resume (same study); several processes with one
``--storage`` are workers of one study.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from nas.commands._args import add_out, add_quiet, add_torch_device, add_workspace, positive_int
from nas.errors import EdgenasError

SAVES_PROGRESS = True

_UNIT = re.compile(r"^\s*([0-9.eE+-]+)\s*([a-zA-Zµ]+)\s*$")


def _amount(flag: str, unit: str) -> Any:
    """An argparse type: a plain positive number in ``unit``; a number with a unit is refused
    with the conversion spelled out (``--max-latency-ms 0.02s`` -> give 20)."""

    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            pass
        m = _UNIT.match(text)
        if m:
            raise argparse.ArgumentTypeError(
                f"{flag} takes a plain number in {unit}, not {m.group(2)!r}: convert {text!r} to {unit}"
            )
        raise argparse.ArgumentTypeError(f"{flag} takes a number in {unit}, got {text!r}")

    return parse


def _count(flag: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a whole number of measurements, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{flag} must be 0 or more, got {value}")
        return value

    return parse


def _margin(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text.rstrip("%")) / (100.0 if text.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--safety-margin takes auto, a fraction (0.05) or a percentage (5%), got {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from nas.search.samplers import SAMPLERS

    p = subparsers.add_parser(
        "search",
        help="search sub-networks per device (Optuna, local or Ray Tune)",
        description="Multi-objective search (accuracy against predicted latency/energy per device) "
        "with hard budgets; resumable; several workers may share one --storage.",
    )
    p.add_argument("--space", required=True, help="search space: nb201, or mbv3 or gpt (with --checkpoint)")
    p.add_argument("--checkpoint", metavar="DIR", help="trained supernet (edgenas train output) for mbv3 and gpt")
    p.add_argument("--device", action="append", default=[], metavar="NAME",
                   help="profiled/imported device (repeatable); for nb201 also table:COLUMN (measured)")
    p.add_argument("--max-latency-ms", type=_amount("--max-latency-ms", "milliseconds"), metavar="MS",
                   help="latency budget per device, in milliseconds")
    p.add_argument("--max-decode-ms", type=_amount("--max-decode-ms", "milliseconds"), metavar="MS",
                   help="gpt: budget of decoding one token after a KV cache of the context, in milliseconds")
    p.add_argument("--max-prefill-ms", type=_amount("--max-prefill-ms", "milliseconds"), metavar="MS",
                   help="gpt: budget of a prefill of the whole context, in milliseconds")
    p.add_argument("--max-memory-mb", type=_amount("--max-memory-mb", "megabytes (10^6 bytes)"), metavar="MB",
                   help="gpt: inference memory budget (weights + KV cache at the context), in MB")
    p.add_argument("--max-energy-mj", type=_amount("--max-energy-mj", "millijoules"), metavar="MJ",
                   help="energy budget per device, in millijoules")
    p.add_argument("--max-params-m", type=_amount("--max-params-m", "millions of parameters"), metavar="M",
                   help="parameter budget, in millions")
    p.add_argument("--max-mflops", type=_amount("--max-mflops", "MFLOPs (millions of MACs)"), metavar="M",
                   help="compute budget, in millions of multiply-accumulates")
    p.add_argument("--max-e2e-ms", type=_amount("--max-e2e-ms", "milliseconds"), metavar="MS",
                   help="end-to-end latency budget of the arch split at its best cut (with --cloud), in milliseconds")
    p.add_argument("--cloud", metavar="NAME",
                   help="joint search: a profiled cloud device; every arch is scored split at its best cut "
                   "between --device (the edge) and it, as e2e_latency_ms (needs --link)")
    p.add_argument("--link", metavar="RATE,RTT",
                   help="the edge-cloud link of a joint search, e.g. 20mbit,40ms (see edgenas split)")
    p.add_argument("--split-precision", choices=("fp32", "fp16", "int8"), default="fp32",
                   help="how activations cross the link in a joint search (default fp32)")
    p.add_argument("--safety-margin", type=_margin, default="auto", metavar="auto|F",
                   help="predicted cost must fit budget/(1+F); auto = the predictor's validation MAPE")
    p.add_argument("--objectives", default=None,
                   help="comma list of accuracy, latency, energy, mflops, params, e2e (default: accuracy,latency; "
                   "with --cloud: accuracy,e2e)")
    p.add_argument("--trials", type=positive_int("--trials"), default=300,
                   help="complete trials the study should hold (default 300)")
    add_out(p, "write the result (Pareto front, recommended arch) as JSON")
    p.add_argument("--storage", metavar="URL",
                   help="study storage: sqlite:///FILE, postgresql://..., journal:PATH (default: workspace studies.db)")
    p.add_argument("--study", metavar="NAME", help="study name (default: derived from the search settings)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: trials in this process (default); ray: trials as Ray Tune actors")
    p.add_argument("--buffered", action=argparse.BooleanOptionalAction, default=None,
                   help="local engine: sample in memory and commit each finished trial in one write "
                   "(default when the study is the workspace's own SQLite file: much faster for cheap "
                   "trials; a killed trial is re-sampled). --no-buffered: one Optuna trial at a time with "
                   "heartbeats (default with --storage, where several workers share the study)")
    p.add_argument("--ray-address", metavar="ADDR", help="auto, local, or HOST:PORT of a running Ray head")
    p.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per Ray trial (default 1)")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per Ray trial, fractions allowed (0.25)")
    p.add_argument("--ray-concurrency", type=int, help="at most this many Ray trials at once")
    p.add_argument("--ray-retries", type=int, default=2, help="retries of a failed Ray trial (default 2)")
    p.add_argument("--ray-storage-path", metavar="DIR", help="Ray Tune storage_path (shared by all nodes)")
    p.add_argument("--sampler", choices=SAMPLERS, default="auto",
                   help="Optuna sampler; auto (default): screened for one device under a budget, "
                   "nsga2 for several devices or no budget (a wide front)")
    p.add_argument("--verify", type=_count("--verify"), default=0, metavar="K",
                   help="after the search, measure up to K candidates at the budget's edge on the device as "
                   "profiled, refit its predictor, and recommend the most accurate arch measured to fit "
                   "(explores a band over the budget unless --safety-margin is given; exit 1 when the "
                   "recommendation could not be verified)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--population", type=int, default=50, help="NSGA-II/III population size (default 50)")
    p.add_argument("--nb201-dataset", default="cifar100", choices=("cifar10", "cifar100", "imagenet16-120"),
                   help="nb201 accuracy table to optimise (validation split; default cifar100)")
    p.add_argument("--cache", metavar="URL", help="accuracy cache database (default: workspace accuracy_cache.db)")
    p.add_argument("--batch-size", type=positive_int("--batch-size"), default=256,
                   help="evaluation batch size for the supernet (default 256)")
    add_torch_device(p, "sub-network evaluation", old=("--eval-device",))
    add_quiet(p)
    add_workspace(p)
    return p


def run(args: argparse.Namespace) -> int:
    from nas.search.engine_ray import RayOptions
    from nas.search.objectives import Budget
    from nas.search.problem import SearchSpec
    from nas.search.result import write_json
    from nas.search.runner import SearchSettings, search
    from nas.workspace import Workspace

    if args.out and Path(args.out).is_dir():
        raise EdgenasError(f"--out {args.out} is a directory; name a JSON file")
    workspace = Workspace.resolve(args.workspace).root
    budget = Budget(args.max_latency_ms, args.max_energy_mj, args.max_params_m, args.max_mflops,
                    max_e2e_ms=args.max_e2e_ms, max_decode_ms=args.max_decode_ms,
                    max_prefill_ms=args.max_prefill_ms, max_memory_mb=args.max_memory_mb)
    split = None
    if args.cloud or args.link:
        if not (args.cloud and args.link):
            raise EdgenasError("a joint search needs both --cloud NAME and --link RATE,RTT (e.g. 20mbit,40ms)")
        from nas.split.link import parse_link

        split = {"cloud": args.cloud, "link": parse_link(args.link).label(), "precision": args.split_precision}
    objectives = args.objectives or ("accuracy,e2e" if split else "accuracy,latency")
    spec = SearchSpec(
        space=args.space,
        space_options={},
        devices=tuple(args.device),
        budget=budget,
        objectives=tuple(o.strip() for o in objectives.split(",") if o.strip()),
        checkpoint=str(args.checkpoint) if args.checkpoint else None,
        nb201_dataset=args.nb201_dataset,
        workspace=str(workspace),
        cache_url=args.cache,
        eval_batch_size=args.batch_size,
        eval_device=args.torch_device,
        split=split,
    )
    settings = SearchSettings(
        trials=args.trials, engine=args.engine, storage=args.storage, study=args.study,
        sampler=args.sampler, seed=args.seed, population=args.population,
        buffered=args.buffered if args.buffered is not None else (args.engine == "local" and not args.storage),
        ray=RayOptions(args.ray_address, args.ray_cpus, args.ray_gpus, args.ray_concurrency,
                       args.ray_retries, args.ray_storage_path),
        verify=args.verify,
    )
    result, _ = search(spec, settings, args.safety_margin, quiet=args.quiet)
    if split:
        from nas.split.objective import annotate_splits

        annotate_splits(result)
    if args.out:
        write_json(args.out, result)
    print(summary(result))
    check = result.get("verification")
    if check and not check["recommended_verified"]:
        where = f"; {args.out} holds predicted costs, marked unverified" if args.out else ""
        print(f"edgenas search: --verify: {check['message'] or check['status']}{where}", file=sys.stderr)
        return 1
    return 0


def summary(result: dict[str, Any]) -> str:
    """A few lines: study, counts, recommended arch with its predicted cost."""
    lines = [f"study {result['study']} in {result['storage']}: {result['trials']['complete']} trials, "
             f"{result['trials']['feasible']} feasible, {len(result['pareto_front'])} on the feasible front"]
    rec = result["recommended"]
    check = result.get("verification")
    if check:
        lines.append(f"verification: {check['measurements']} of up to {check['requested']} measured on the device; "
                     + ", ".join(f"trial {r['trial']} {_costs(r['measured'])} ({'fits' if r['fits'] else 'over'})"
                                 for r in result["verified"]))
    if rec is None:
        lines.append("no feasible arch found yet: run more --trials or relax the budget")
    else:
        costs = _costs(rec["predicted"])
        measured = f" | measured {_costs(rec['measured'])}" if rec.get("measured") else ""
        tag = "" if not check else (" (verified)" if rec.get("verified") else " (UNVERIFIED)")
        score = (f"validation loss {rec['loss']:.3f} (perplexity {rec['perplexity']:.2f})" if "perplexity" in rec
                 else f"accuracy {rec['accuracy']:.2f} %")
        lines.append(f"recommended{tag}: trial {rec['trial']} {score} | predicted {costs}{measured}")
        lines.append(f"  arch {json.dumps(rec['arch'], separators=(',', ':'))}")
        if rec.get("split"):
            lines.append(f"  split at point {rec['split']['position']} ({rec['split']['kind']}, {rec['split']['label']})")
    return "\n".join(lines)


def _costs(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in values.items())

