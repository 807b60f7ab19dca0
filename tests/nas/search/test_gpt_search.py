"""Searching the gpt space under decode, prefill and memory budgets, and budgets in the wrong unit."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from latency_predictors.device_profile import DeviceProfile
from nas.cli import main
from nas.config import load_config
from nas.errors import EdgenasError
from nas.search.objectives import Budget, constraint_values
from nas.workspace import Workspace
from search_spaces import get_space

SPACE = {"preset": "tiny", "contexts": [32, 64], "embeds": [32, 64], "depths": [1, 2], "heads": [1, 2],
         "mlp_ratios": [2, 4]}
GPT = {
    "seed": 0,
    "space": {"name": "gpt", "options": SPACE},
    "data": {"name": "pydoc", "eval_tokens": 512},
    "train": {"steps": 2, "batch_size": 4, "num_random": 1, "optimizer": "adamw", "lr": 0.003,
              "label_smoothing": 0.0, "device": "cpu", "threads": 1},
    "checkpoint": {"every_steps": 2},
}


def _code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse type errors
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--max-decode-ms", "5"], "--max-decode-ms: device 'table:pixel3' predicts latency_ms for space nb201, "
                                   "not decode_ms; use --max-latency-ms"),
        (["--max-prefill-ms", "5"], "not prefill_ms; use --max-latency-ms"),
        (["--max-memory-mb", "5"], "--max-memory-mb: space nb201 does not count inference memory; bound its size "
                                   "with --max-params-m"),
        (["--max-decode-ms", "20ms"], "--max-decode-ms takes a plain number in milliseconds, not 'ms'"),
    ],
)
def test_a_budget_the_space_has_no_metric_for_is_one_line(tmp_path: Path, capsys, extra, needle) -> None:
    code = _code(["search", "--space", "nb201", "--device", "table:pixel3", "--workspace", str(tmp_path),
                  "--trials", "2", "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and needle in err[-1], err  # argparse prints its usage above the line


def test_a_gpt_profile_is_refused_for_mbv3_and_names_the_fix(tmp_path: Path) -> None:
    gpt = get_space("gpt", preset="tiny")
    ws = Workspace(tmp_path)
    DeviceProfile(name="phone", space=gpt.describe(), target={"kind": "llvm"}, reached={"kind": "local"}).save(
        ws.profile_path("phone"))
    with pytest.raises(EdgenasError) as err:
        ws.load_profile("phone", get_space("mbv3", preset="small"))
    text = str(err.value)
    assert "\n" not in text and "profiled on space gpt (preset tiny), not on mbv3 (preset small)" in text
    assert "edgenas profile --device phone-mbv3 --space mbv3" in text


def test_budgets_per_metric_become_constraints_and_keep_old_identities() -> None:
    budget = Budget(max_decode_ms=2.0, max_prefill_ms=40.0, max_memory_mb=1.5, safety_margin=0.0)
    metrics = {"decode_ms@d": 1.0, "prefill_ms@d": 60.0, "memory_mb": 3.0}
    assert constraint_values(budget, metrics, ["d"]) == {"decode_ms@d": -0.5, "prefill_ms@d": 0.5, "memory_mb": 1.0}
    assert budget.latency_limits() == {"decode_ms": 2.0, "prefill_ms": 40.0} and budget.limited
    # an image-space budget is stored as it always was (a study's identity must not change)
    assert set(Budget(max_latency_ms=5.0).to_json()) == {"max_latency_ms", "max_energy_mj", "max_params_m",
                                                           "max_mflops", "safety_margin"}
    with pytest.raises(EdgenasError, match="--max-decode-ms must be a positive number"):
        Budget(max_decode_ms=-1.0)


@pytest.fixture(scope="module")
def gpt_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-step gpt supernet and an eager profile of its space (device ``g``)."""
    from nas.profiling import profile_device
    from nas.training import TrainConfig, train

    root = tmp_path_factory.mktemp("gptsearch")
    (root / "gpt.yaml").write_text(yaml.safe_dump(GPT))
    train(load_config(TrainConfig, root / "gpt.yaml"), root / "run", progress=False)
    space = get_space("gpt", **SPACE)
    profile_device(Workspace(root / "ws"), "g", {"kind": "llvm", "num-cores": 1}, space=space, backend="eager",
                   repeat=3, budget_minutes=0.05, holdout=2, train=3, max_blocks=12, progress=False)
    return root / "run", root / "ws"


@pytest.mark.slow  # trains 2 steps, profiles eagerly and searches, ~60 s
def test_gpt_search_under_decode_and_memory_budgets(gpt_workspace, tmp_path: Path, capsys) -> None:
    checkpoint, ws = gpt_workspace
    out = tmp_path / "result.json"
    base = ["search", "--space", "gpt", "--checkpoint", str(checkpoint), "--device", "g", "--workspace", str(ws),
            "--trials", "6", "--quiet"]
    assert _code(base + ["--max-decode-ms", "1000", "--max-memory-mb", "50", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rec = result["recommended"]
    assert rec is not None and rec["accuracy"] == pytest.approx(-rec["loss"])
    assert {"decode_ms@g", "prefill_ms@g", "memory_mb"} <= set(rec["predicted"])
    assert set(rec["constraints"]) == {"decode_ms@g", "memory_mb"}
    assert rec["predicted"]["memory_mb"] <= 50 and rec["predicted"]["decode_ms@g"] > 0
    assert "validation loss" in capsys.readouterr().out
    # the CNN flag on a language model: one line naming the gpt flags
    assert _code(base + ["--max-latency-ms", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-latency-ms: device 'g' predicts decode_ms, prefill_ms for space gpt" in err[0]
    assert "use --max-decode-ms or --max-prefill-ms (one token after a KV cache of the context)" in err[0]
    # a memory budget nothing fits: refused before any trial, with the figure to raise it to
    assert _code(base + ["--max-decode-ms", "1000", "--max-memory-mb", "0.001"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-memory-mb 0.001 is infeasible" in err[0]


@pytest.mark.slow  # searches, then measures both metrics and exports to ONNX, ~60 s
def test_gpt_pick_is_measured_for_both_metrics_exported_and_registered(gpt_workspace, tmp_path: Path, capsys) -> None:
    checkpoint, ws = gpt_workspace
    out = tmp_path / "result.json"
    assert _code(["search", "--space", "gpt", "--checkpoint", str(checkpoint), "--device", "g", "--workspace",
                  str(ws), "--trials", "6", "--max-decode-ms", "1000", "--out", str(out), "--quiet"]) == 0
    study = json.loads(out.read_text())["study"]
    assert _code(["finetune", study, "--device", "g", "--epochs", "0", "--formats", "safetensors,onnx",
                  "--workspace", str(ws), "--quiet"]) == 0
    registry = Workspace(ws).registry()
    (entry,) = registry.list()
    assert entry.name == f"{study}-g"  # the registry name, whatever the metrics are called
    m = entry.metrics
    assert m["latency_metric"] == "decode_ms" and m["measured_latency_ms"] == m["measured_decode_ms"]
    assert m["measured_decode_ms"] > 0 and m["measured_prefill_ms"] > 0 and m["predicted_prefill_ms"] > 0
    assert m["accuracy"] == pytest.approx(-m["loss"]) and m["perplexity"] > 1 and m["memory_mb"] > 0
    assert set(entry.artifacts) == {"safetensors", "onnx"}
    model = registry.load_model(entry.ref)  # the tied weights come back
    assert model.head.proj.weight.data_ptr() == model.embed.tokens.weight.data_ptr()
    # the report ranks a language model by its decode latency, and shows the registered model
    page = tmp_path / "report.html"
    assert _code(["report", study, "--workspace", str(ws), "--out", str(page)]) == 0
    html = page.read_text()
    assert "accuracy against predicted decode latency" in html and entry.ref in html


@pytest.mark.slow  # fine-tunes a language model for 8 steps and resumes it, ~20 s
def test_text_finetune_distils_and_resumes(gpt_workspace, tmp_path: Path) -> None:
    from nas.finetune import FinetuneConfig, finetune_subnet
    from nas.training import load_trained

    checkpoint, _ = gpt_workspace
    trained = load_trained(checkpoint, "cpu")
    splits = trained.task.splits
    trained.task.splits = replace(splits, train=splits.train[:8 * 4 * 64])  # a shorter corpus: 8 steps an epoch
    arch = trained.space.smallest()
    config = FinetuneConfig(epochs=1, batch_size=4, checkpoint_every=4)
    first = finetune_subnet(trained, arch, config, tmp_path / "ft", progress=False)
    assert first.steps == 8 and first.resumed_from == 0
    assert first.finetuned.loss < first.inherited.loss  # 8 AdamW steps with distillation help a 2-step supernet
    again = finetune_subnet(trained, arch, config, tmp_path / "ft", progress=False)
    assert again.resumed_from == 8 and again.finetuned.loss == pytest.approx(first.finetuned.loss)
