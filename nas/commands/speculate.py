"""``edgenas speculate``: speculative decoding, an edge sub-network drafting for the cloud model.

Examples::

    edgenas speculate --checkpoint runs/gpt_tiny --draft min --link 20mbit,50ms
    edgenas speculate --checkpoint runs/gpt_tiny --draft min --link 20mbit,10ms --link 20mbit,100ms \\
        --run --out speculate.json
    edgenas speculate --checkpoint runs/gpt_tiny --draft min --edge pi --cloud server --link 5mbit,80ms \\
        --draft-length 4 --run --prompt "The with statement"

The edge runs the sub-network ``--draft`` of the trained gpt supernet and drafts tokens;
the cloud runs ``--verifier`` (default the largest network), checks a round of drafts in
one pass and keeps the ones it agrees with, so the text is exactly the cloud model's
greedy text. The draft length is planned per link from the acceptance rate (estimated on
validation prompts) and the costs (the devices' profiles where they predict decoding,
else the two models timed here). ``--run`` decodes for real: edge only, cloud only
(streamed) and speculative, the verifier in a second process over TCP on 127.0.0.1
through the software link; exit code 1 if a cloud-side output differs from the cloud
model's greedy output.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from nas.commands._args import add_out, add_quiet, add_workspace, positive_int

SAVES_PROGRESS = False


def _draft_length(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--draft-length takes auto or a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--draft-length must be auto or at least 1, got {value}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "speculate",
        help="speculative decoding: an edge sub-network drafts, the cloud's gpt model verifies (plan, run)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="trained gpt supernet (directory, checkpoint.json, or a run name in WORKSPACE/runs)")
    p.add_argument("--draft", default="min", metavar="ARCH",
                   help="the edge's draft sub-network: min, an arch as JSON, or a JSON file (default min)")
    p.add_argument("--verifier", default="max", metavar="ARCH",
                   help="the cloud's network (default max, the largest)")
    p.add_argument("--link", required=True, action="append", metavar="RATE,RTT",
                   help="the link, e.g. 20mbit,50ms (see edgenas split); repeat to plan and run several")
    p.add_argument("--edge", metavar="NAME", help="edge device profile (its decode costs, when it predicts them)")
    p.add_argument("--cloud", metavar="NAME", help="cloud device profile (its decode costs, when it predicts them)")
    p.add_argument("--draft-length", type=_draft_length, default=None, metavar="auto|N",
                   help="tokens drafted per verification (default auto: planned per link)")
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                   help="prompt(s) to decode with --run (repeatable; default: validation text)")
    p.add_argument("--prompts", type=positive_int("--prompts"), default=4, metavar="N",
                   help="validation prompts for the acceptance rate, and as many for --run (default 4)")
    p.add_argument("--prompt-tokens", type=positive_int("--prompt-tokens"), default=32, metavar="N",
                   help="bytes per validation prompt (default 32)")
    p.add_argument("-n", "--tokens", type=positive_int("-n"), default=64, metavar="N",
                   help="bytes to write per prompt with --run (default 64)")
    p.add_argument("--run", action="store_true",
                   help="decode for real: verifier in a second process, TCP on 127.0.0.1, link in software")
    p.add_argument("--threads", type=positive_int("--threads"), default=1,
                   help="torch threads of each side (default 1)")
    p.add_argument("--port", type=int, default=0, help="port of the cloud process on 127.0.0.1 (default 0: a free one)")
    p.add_argument("--request-timeout-s", type=float, default=60.0,
                   help="give up on a cloud that does not answer within this many seconds (default 60)")
    add_out(p, "write the plans (and the runs) as JSON")
    add_quiet(p)
    add_workspace(p)
    return p


def run(args: argparse.Namespace) -> int:
    from nas.commands.eval import checkpoint_path
    from nas.search.result import write_json
    from nas.split import RunSettings, parse_link
    from nas.split.pipeline import speculate
    from nas.workspace import Workspace

    links = [parse_link(text) for text in args.link]
    settings = RunSettings(port=args.port, request_timeout_s=args.request_timeout_s)
    workspace = Workspace.resolve(args.workspace) if (args.edge or args.cloud) else None
    doc = speculate(checkpoint_path(args.checkpoint, args.workspace), links, draft=args.draft, verifier=args.verifier,
                    workspace=workspace, edge=args.edge, cloud=args.cloud, draft_length=args.draft_length,
                    prompts=args.prompt, samples=args.prompts, prompt_tokens=args.prompt_tokens, tokens=args.tokens,
                    run=args.run, settings=settings, threads=args.threads, log=None if args.quiet else print)
    if args.out:
        write_json(args.out, doc)
    print(format_speculation(doc))
    if args.out:
        print(f"wrote {json.dumps(str(args.out))}")
    return 0 if doc.get("run", {}).get("all_identical", True) else 1


def format_speculation(doc: dict[str, Any]) -> str:
    """Per link: the planned draft length and the predicted (and measured) figures."""
    costs = doc["plans"][0]["costs"]
    lines = [f"draft {doc['draft_label']} (edge) for verifier {doc['verifier_label']} (cloud); "
             f"acceptance rate {doc['alpha']['alpha']:.3f} on {doc['alpha']['prompts']} validation prompts",
             f"costs: draft {costs['draft_ms']:.2f} ms/token [{costs['edge_source']}]; verify "
             f"{costs['verify_ms'][0]:.2f} ms (1 token) to {costs['verify_ms'][-1]:.2f} ms "
             f"({len(costs['verify_ms'])} tokens) [{costs['cloud_source']}]",
             f"{'link':>16} {'k':>3} {'mode':>12} {'tokens/s':>9} {'first ms':>9} {'measured':>9} {'first ms':>9}"]
    runs = {(r["mode"], r["link"]["label"]): r["summary"] for r in doc.get("run", {}).get("runs", [])
            if r["mode"] != "speculative" or r["draft_length"] == _planned(doc, r["link"]["label"])}
    for plan in doc["plans"]:
        label = plan["costs"]["link"]["label"]
        for mode in ("edge_only", "cloud_only", "speculative"):
            pred = plan["predicted"][mode]
            got = runs.get((mode, "none" if mode == "edge_only" else label))
            measured = f"{got['tokens_per_s']:>9.1f} {got['ttft_ms']:>9.1f}" if got else f"{'-':>9} {'-':>9}"
            k = str(plan["draft_length"]) if mode == "speculative" else ""
            lines.append(f"{label:>16} {k:>3} {mode:>12} {pred['tokens_per_s']:>9.1f} {pred['ttft_ms']:>9.1f} "
                         f"{measured}")
    if "run" in doc:
        spec = [runs[("speculative", p["costs"]["link"]["label"])] for p in doc["plans"]]
        acceptance = ", ".join(f"{s['acceptance']:.3f}" for s in spec)
        verdict = ("identical to the cloud model's greedy output" if doc["run"]["all_identical"]
                   else "DIFFERENT from the cloud model's greedy output: " +
                   ", ".join(k for k, v in doc["run"]["identical"].items() if not v))
        lines.append(f"measured acceptance per link: {acceptance}; every cloud-side output {verdict}")
    return "\n".join(lines)


def _planned(doc: dict[str, Any], label: str) -> int:
    return next(p["draft_length"] for p in doc["plans"] if p["costs"]["link"]["label"] == label)
