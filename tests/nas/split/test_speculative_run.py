"""Speculative decoding for real: the verifier in a second process, the link enforced in software."""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import pytest
import torch
import yaml
from split_helpers import worker_processes

from nas.cli import main
from nas.config import load_config
from nas.errors import EdgenasError
from nas.generate import generate
from nas.split import Link, RunSettings
from nas.split.speculative_run import VerifierLink, run_decoding
from nas.split.worker import EXIT_AT_VAR
from nas.training import TrainConfig, train
from search_spaces import get_space

pytestmark = pytest.mark.slow  # each test starts a second Python process (torch import, a few seconds)


def _workers() -> list:
    return worker_processes()


@pytest.fixture(scope="module")
def models():
    space = get_space("gpt", preset="tiny", contexts=(16, 32))
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        supernet = space.build_supernet().eval()
        with torch.no_grad():
            for p in supernet.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        nets.append(supernet)
    verifier = nets[0].extract(space.largest()).eval()
    return space, verifier, nets[0].extract(space.smallest()).eval(), nets[1].extract(space.smallest()).eval()


def test_two_processes_over_the_link_write_the_verifiers_greedy_output(models):
    """Drafts that agree (shared weights) and that disagree (no shared weights), two links,
    40 tokens crossing the verifier's window slide: every cloud-side output is its greedy output."""
    space, verifier, draft, stranger = models
    prompts = [[72, 101, 108, 108, 111], list(range(40, 76))]
    links = [Link(1e8, 2.0), Link(2e7, 20.0)]
    for drafter in (draft, stranger):
        doc = run_decoding(space, drafter, verifier, prompts, 40, links, [3, 6])
        assert doc["all_identical"], doc["identical"]
        runs = {(r["mode"], r["link"]["label"]): r for r in doc["runs"]}
        assert set(runs) == {("edge_only", "none"), ("cloud_only", "100mbit,2ms"), ("cloud_only", "20mbit,20ms"),
                             ("speculative", "100mbit,2ms"), ("speculative", "20mbit,20ms")}
        slow = runs[("speculative", "20mbit,20ms")]
        rounds = slow["summary"]["rounds"]
        # every round is a round trip: at least RTT per round on top of the first token
        assert all(r["total_ms"] - r["ttft_ms"] >= 20.0 * r["rounds"] for r in slow["records"])
        assert runs[("cloud_only", "20mbit,20ms")]["summary"]["ttft_ms"] >= 20.0
        assert rounds >= 2 * (39 // 7)
    assert not _workers()


def test_the_verifier_process_answers_like_the_verifier_here(models):
    space, verifier, draft, _ = models
    with VerifierLink(space, verifier, Link(1e9, 0.0)) as cloud:
        cloud.connect()
        first, room = cloud.prefill([1, 2, 3])
        assert first == int(generate(verifier, torch.tensor([1, 2, 3]), 1)[0]) and room == 32 - 4
        accepted, token, _ = cloud.verify([first, first])  # wrong on purpose at some point, or right
        expected = generate(verifier, torch.tensor([1, 2, 3]), 4).tolist()
        assert [first, *([first, first][:accepted]), token] == expected[: accepted + 2]
    assert not _workers()


def test_a_cloud_that_dies_mid_request_is_one_line_and_nothing_hangs(models, monkeypatch):
    space, verifier, draft, _ = models
    monkeypatch.setenv(EXIT_AT_VAR, "4")
    start = time.monotonic()
    with pytest.raises(EdgenasError, match="stopped mid-request") as err:
        run_decoding(space, draft, verifier, [[1, 2, 3]], 30, [Link(1e8, 1.0)], [3],
                     settings=RunSettings(request_timeout_s=30))
    assert "\n" not in str(err.value) and time.monotonic() - start < 60
    assert not _workers()


# --- the command ------------------------------------------------------------------------
SPACE = {"preset": "tiny", "contexts": [32, 64], "embeds": [32, 64], "depths": [1, 2], "heads": [1, 2],
         "mlp_ratios": [2, 4]}
GPT = {"seed": 0, "log_every": 1, "space": {"name": "gpt", "options": SPACE},
       "data": {"name": "pydoc", "eval_tokens": 1024},
       "train": {"steps": 3, "batch_size": 4, "num_random": 1, "optimizer": "adamw", "lr": 0.003,
                 "label_smoothing": 0.0, "device": "cpu", "threads": 1},
       "checkpoint": {"every_steps": 3}}


@pytest.fixture(scope="module")
def trained_gpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spec-gpt")
    (root / "gpt.yaml").write_text(yaml.safe_dump(GPT))
    train(load_config(TrainConfig, root / "gpt.yaml"), root / "run", progress=False)
    return root / "run"


def test_speculate_command_plans_runs_and_checks_the_output(trained_gpt, tmp_path, capsys):
    out = tmp_path / "spec.json"
    code = main(["speculate", "--checkpoint", str(trained_gpt), "--link", "100mbit,5ms", "--link", "20mbit,40ms",
                 "--run", "--prompts", "1", "--prompt-tokens", "8", "-n", "12", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    doc = json.loads(out.read_text())
    assert doc["run"]["all_identical"] and len(doc["plans"]) == 2
    assert all(1 <= p["draft_length"] <= 16 for p in doc["plans"])
    assert "identical to the cloud model's greedy output" in printed and "20mbit,40ms" in printed
    code = main(["speculate", "--checkpoint", str(trained_gpt), "--link", "20mbit,40ms", "--draft-length", "3",
                 "--prompts", "1", "--prompt-tokens", "8", "--quiet"])
    assert code == 0 and " 3  speculative" in capsys.readouterr().out
    assert not _workers()


@pytest.mark.parametrize("flags, message", [
    (["--draft", '{"embed": 48, "heads": [1], "mlp_ratios": [2], "context": 32}'],
     "--draft .*not a sub-network of the cloud model's space"),
    (["--draft", "max", "--verifier", "min"], "--draft .* is larger than the verifier"),
    (["--draft-length", "0"], "--draft-length must be auto or at least 1"),
    (["--link", "fast"], "--link 'fast'"),
])
def test_bad_input_is_one_line(trained_gpt, capsys, flags, message):
    args = ["speculate", "--checkpoint", str(trained_gpt), "--link", "20mbit,40ms", *flags]
    with pytest.raises(SystemExit) if "--draft-length" in flags else contextlib.nullcontext():
        code = main(args)
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 or "usage" in err
    assert re.search(message, err), err
