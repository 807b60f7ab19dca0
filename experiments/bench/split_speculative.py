"""Speculative decoding over a link: the edge's smallest gpt sub-network drafts, the cloud's largest verifies.

A gpt supernet (tiny preset) is trained briefly on the built-in pydoc corpus with
``experiments/configs/train_gpt_tiny.yaml`` (one thread; reused when already trained in
the workspace). Then, per link (20 Mbit/s at RTTs of 10, 50 and 100 ms), the planner
picks the draft length from the acceptance rate (estimated on validation prompts) and the
two models' costs (timed here: there are no device profiles in this benchmark), and the
three ways of writing the same bytes after validation prompts run for real: edge only
(the draft alone), cloud only (prompt up, the cloud streams its tokens back) and
speculative (edge drafts, cloud verifies in a second process over TCP on 127.0.0.1
through the software link). Reported: acceptance rate, tokens/s after the first token,
time to first token, measured beside predicted, the ratio to cloud only, speculative
decoding at fixed draft lengths 1, 4 and 16 beside the planner's, and whether every
cloud-side output equals the cloud model's greedy output.

Full size (trains about 10 minutes on one core the first time)::

    python experiments/bench/split_speculative.py --out experiments/results/split_speculative.json

CI size (a 6-step supernet, one prompt, 16 bytes, one link)::

    python experiments/bench/split_speculative.py --smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import device_name, emit, write_results  # noqa: E402

BENCH = "split_speculative"
LINKS = ("20mbit,10ms", "20mbit,50ms", "20mbit,100ms")
COMPARE = (1, 4, 16)
"""Draft lengths also run on every link, beside the planner's (does its choice win?)."""
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train_gpt_tiny.yaml"
SMOKE_SPACE = {"preset": "tiny", "contexts": [32, 64], "embeds": [32, 64], "depths": [1, 2], "heads": [1, 2],
               "mlp_ratios": [2, 4]}


def ensure_checkpoint(workspace: Path, smoke: bool) -> tuple[Path, float]:
    """The trained gpt supernet (trained here unless already there) and the seconds training took."""
    from nas.config import load_config, read_yaml
    from nas.training import TrainConfig, train
    from nas.training.checkpoint import checkpoint_meta, find_checkpoint

    out = workspace / "runs" / ("gpt_smoke" if smoke else "gpt_tiny")
    data = read_yaml(CONFIG)
    data["output_dir"] = str(out)
    data["train"]["threads"] = 1
    if smoke:
        data["space"]["options"] = SMOKE_SPACE
        data["data"]["eval_tokens"] = 1024
        data["train"].update(batch_size=4, warmup_steps=1, phases=[
            {"name": "largest", "steps": 2}, {"name": "depth", "steps": 1}, {"name": "heads", "steps": 1},
            {"name": "width", "steps": 2}])
    cfg = load_config(TrainConfig, data)
    if find_checkpoint(out) is not None and checkpoint_meta(out).get("step") == cfg.train.total_steps:
        return out, 0.0  # trained before (the same config): reuse it
    start = time.perf_counter()
    train(cfg, out, progress=False)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workspace", default="/tmp/edgenas-spec-bench")
    parser.add_argument("--draft", default="min", help="the edge's draft sub-network (default min)")
    parser.add_argument("--prompts", type=int, default=6, help="validation prompts (default 6, as many for alpha)")
    parser.add_argument("--tokens", type=int, default=128, help="bytes written per prompt (default 128)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    from nas.split import parse_link
    from nas.split.pipeline import speculate

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    checkpoint, train_s = ensure_checkpoint(Path(args.workspace), args.smoke)
    links = [parse_link(text) for text in (LINKS[1:2] if args.smoke else LINKS)]
    compare = () if args.smoke else COMPARE
    doc = speculate(checkpoint, links, draft=args.draft, compare=compare, samples=1 if args.smoke else args.prompts,
                    prompt_tokens=16 if args.smoke else 32, tokens=16 if args.smoke else args.tokens, run=True,
                    log=None if args.smoke else print)
    load_after = os.getloadavg()
    device = (f"{device_name()}: edge in this process, verifier in a second one, torch eager 1 thread each, "
              f"software link over 127.0.0.1; load {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    base = {"draft": doc["draft_label"], "verifier": doc["verifier_label"], "smoke": args.smoke,
            "prompts": len(doc["run"]["prompt_tokens"]), "prompt_tokens": doc["run"]["prompt_tokens"][0],
            "tokens": doc["run"]["tokens"], "train_s": round(train_s, 1), "checkpoint": str(checkpoint),
            "load_avg_before": load_before, "load_avg_after": load_after}
    records: list[dict[str, Any]] = []
    alpha = doc["alpha"]
    emit(records, BENCH, "alpha_estimate", round(alpha["alpha"], 4), "fraction", device,
         {**base, "how": alpha["how"], "alpha_on_prompts": alpha["alpha_on_prompts"]})
    runs = {(r["mode"], r["link"]["label"], r["draft_length"]): r["summary"] for r in doc["run"]["runs"]}
    edge = runs[("edge_only", "none", 0)]
    for plan in doc["plans"]:
        label = plan["costs"]["link"]["label"]
        config = {**base, "link": label, "draft_length": plan["draft_length"], "chosen_by": plan["chosen_by"],
                  "costs": {k: plan["costs"][k] for k in ("draft_ms", "verify_ms", "cloud_prefill_ms",
                                                          "edge_source", "cloud_source")},
                  "predicted": plan["predicted"]}
        cloud, spec = runs[("cloud_only", label, 0)], runs[("speculative", label, plan["draft_length"])]
        for mode, s in (("edge_only", edge), ("cloud_only", cloud), ("speculative", spec)):
            emit(records, BENCH, f"{mode}_tokens_per_s@{label}", round(s["tokens_per_s"], 1), "tokens/s", device,
                 {**config, "predicted_tokens_per_s": round(plan["predicted"][mode]["tokens_per_s"], 1)})
            emit(records, BENCH, f"{mode}_ttft_ms@{label}", round(s["ttft_ms"], 2), "ms", device,
                 {**config, "predicted_ttft_ms": round(plan["predicted"][mode]["ttft_ms"], 2)})
        emit(records, BENCH, f"acceptance@{label}", round(spec["acceptance"], 4), "fraction", device,
             {**config, "tokens_per_round": spec["tokens_per_round"], "rounds": spec["rounds"],
              "alpha_measured": spec["alpha"]})
        emit(records, BENCH, f"speculative_over_cloud_only@{label}",
             round(spec["tokens_per_s"] / cloud["tokens_per_s"], 3), "ratio", device,
             {**config, "cloud_ms_per_token": {"cloud_only": cloud["cloud_ms_per_token"],
                                               "speculative": spec["cloud_ms_per_token"]}})
        table = {row["k"]: row["tokens_per_s"] for row in plan["table"]}
        for k in compare:
            other = runs[("speculative", label, k)]
            emit(records, BENCH, f"speculative_tokens_per_s@{label}/k={k}", round(other["tokens_per_s"], 1),
                 "tokens/s", device, {**config, "k": k, "acceptance": other["acceptance"], "alpha_measured": other["alpha"],
                                      "predicted_tokens_per_s": round(table[k], 1)})
    emit(records, BENCH, "identical_greedy_output", float(doc["run"]["all_identical"]), "bool", device,
         {**base, "per_run": doc["run"]["identical"], "reference": doc["run"]["reference"],
          "edge_only_agreement": doc["run"]["edge_only_agreement"]})
    if args.out or not args.smoke:
        print(f"wrote {write_results(records, BENCH, args.out)}")
    return records


if __name__ == "__main__":
    main()
