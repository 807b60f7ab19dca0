"""``edgenas generate CHECKPOINT --arch SPEC --prompt TEXT -n N``: what a language model writes.

Extracts one sub-network of a trained ``gpt`` supernet and decodes text after the prompt
with a KV cache, greedily (``--temperature 0``) or by sampling
(:func:`nas.generate.generate_from_checkpoint`). The text goes to stdout; the
sub-network and the speed to stderr.
"""

from __future__ import annotations

import argparse
import sys

from nas.commands._args import add_quiet, add_torch_device, add_workspace, positive_int

SAVES_PROGRESS = False


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--temperature takes a number, got {text!r}") from None
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"--temperature must be between 0 and 100, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "generate",
        help="text a language-model sub-network writes after a prompt",
        description="Extract one sub-network of a trained gpt supernet and write text after the prompt "
        "(byte by byte, with a KV cache): greedy with --temperature 0, else sampled.",
    )
    parser.add_argument("checkpoint", help="training output directory of a gpt supernet (or its checkpoint.json), "
                        "or a run name in WORKSPACE/runs")
    parser.add_argument("--arch", default="max", metavar="SPEC",
                        help="the sub-network: min, max, random:1, an arch as JSON, or a JSON file (default: max)")
    parser.add_argument("--prompt", default="", metavar="TEXT", help="text to continue (default: a line break)")
    parser.add_argument("-n", "--tokens", type=positive_int("-n"), default=200, metavar="N",
                        help="bytes to write (default: 200)")
    parser.add_argument("--temperature", type=_temperature, default=0.8,
                        help="sampling temperature; 0 is greedy (default: 0.8)")
    parser.add_argument("--top-k", type=positive_int("--top-k"), default=None, metavar="K",
                        help="sample only from the K most likely bytes (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed for sampling and random:1 (default: 0)")
    add_torch_device(parser, "the model")
    add_quiet(parser)
    add_workspace(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from nas.commands.eval import checkpoint_path
    from nas.generate import generate_from_checkpoint

    result = generate_from_checkpoint(
        checkpoint_path(args.checkpoint, args.workspace), args.arch, args.prompt, tokens=args.tokens,
        temperature=args.temperature, top_k=args.top_k, seed=args.seed, device=args.torch_device,
    )
    if not args.quiet:
        print(f"sub-network {result.arch}: {result.tokens} bytes in {result.seconds:.2f} s "
              f"({result.tokens_per_s:.0f} bytes/s)", file=sys.stderr)
    print(result.prompt + result.text)
    return 0
