"""The gpt space through data, training, evaluation, the accuracy cache and generation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from nas.cli import main
from nas.config import load_config
from nas.data import DataConfig, TextEvalBatches, load_text_splits, text_train_batches
from nas.data.text import SEPARATOR, decode, encode, pydoc_documents, split_documents
from nas.errors import EdgenasError
from nas.evaluation import next_token_loss
from nas.generate import generate
from nas.search.accuracy import SupernetAccuracy
from nas.training import TrainConfig, load_trained, read_checkpoint, train
from nas.training.losses import NEXT_TOKEN, fold
from nas.training.sandwich import sandwich_step
from search_spaces import get_space

SPACE = {"preset": "tiny", "contexts": [32, 64], "embeds": [32, 64], "depths": [1, 2], "heads": [1, 2],
         "mlp_ratios": [2, 4]}
GPT: dict = {
    "seed": 0,
    "log_every": 1,
    "space": {"name": "gpt", "options": SPACE},
    "data": {"name": "pydoc", "eval_tokens": 1024},
    "train": {"steps": 3, "batch_size": 4, "num_random": 1, "optimizer": "adamw", "lr": 0.003,
              "label_smoothing": 0.0, "device": "cpu", "threads": 1},
    "checkpoint": {"every_steps": 2},
}
PROGRESSIVE = {
    "space": {"options": {**SPACE, "dropout": 0.1}},
    "train": {"steps": None, "progressive": True, "phases": [
        {"name": "largest", "steps": 1},
        {"name": "depth", "steps": 1},
        {"name": "heads", "steps": 2},
        {"name": "width", "steps": 2, "lr": 0.002},
    ]},
    "checkpoint": {"every_steps": 1},
}


def merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write(path: Path, **changes) -> Path:
    """A tiny gpt training config (``GPT`` with ``changes`` merged in) at ``path``."""
    path.write_text(yaml.safe_dump(merge(GPT, changes)))
    return path


@pytest.fixture(scope="module")
def trained_gpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gpt supernet trained for 3 steps (shared by the tests that only read it)."""
    root = tmp_path_factory.mktemp("gpt")
    train(load_config(TrainConfig, write(root / "gpt.yaml")), root / "run", progress=False)
    return root / "run"


# --- data ------------------------------------------------------------------------------
def test_pydoc_splits_by_document_follow_the_seed() -> None:
    cfg = DataConfig(name="pydoc")
    a, b, c = (load_text_splits(cfg, seed, 64) for seed in (0, 0, 1))
    assert all(torch.equal(a.split(n), b.split(n)) for n in ("train", "validation", "test"))
    assert not torch.equal(a.validation, c.validation)
    documents = pydoc_documents()
    assert len(documents) > 50 and sum(len(d) for _, d in documents) > 400_000
    train, val, test = split_documents(documents, 0.1, 0)
    names = [{n for n, _ in split} for split in (train, val, test)]
    assert not (names[0] & names[1]) and not (names[0] & names[2]) and not (names[1] & names[2])
    assert set().union(*names) == {n for n, _ in documents}
    total = sum(len(d) for _, d in documents)
    for split in (val, test):  # whole documents, about a tenth of the bytes each
        assert 0.08 * total <= sum(len(d) for _, d in split) <= 0.14 * total
    assert a.validation.numel() == sum(len(d) for _, d in val) + len(SEPARATOR) * (len(val) - 1)
    assert a.describe()["documents"] == {"train": len(train), "validation": len(val), "test": len(test)}
    assert decode(a.validation[:200]) == (SEPARATOR.join(d for _, d in val)).decode()[:200]


def test_text_from_a_directory_or_a_file(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    for i in range(6):
        (corpus / "sub" / f"doc{i}.txt").write_text(f"document {i}: " + "lorem ipsum dolor " * 40)
    (corpus / "image.bin").write_bytes(b"\x89PNG\0\0\0" * 100)  # binary: skipped
    (corpus / ".hidden.txt").write_text("never read " * 100)
    splits = load_text_splits(DataConfig(name="text", path=str(corpus), val_fraction=0.2), 0, 32)
    assert sum(splits.describe()["documents"].values()) == 6
    everything = bytes(splits.train.tolist() + splits.validation.tolist() + splits.test.tolist())
    assert b"PNG" not in everything and b"never read" not in everything
    single = tmp_path / "book.txt"
    single.write_text("".join(f"line {i} of a long book\n" for i in range(3000)))
    book = load_text_splits(DataConfig(name="text", path=str(single)), 0, 64)
    assert book.train.numel() + book.validation.numel() + book.test.numel() >= single.stat().st_size


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing", "does not exist: point it at a text file or a directory"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "holds no text files"),
    (lambda p: (p / "blank.txt").write_text("\n  \n") and p / "blank.txt", "holds no text: give a file"),
    (lambda p: (p / "tiny.txt").write_text("a\nb\n") and p / "tiny.txt", "a split by document needs at least 3"),
])
def test_a_corpus_that_cannot_work_is_a_one_line_error(tmp_path: Path, capsys, make, message) -> None:
    path = make(tmp_path)
    with pytest.raises(EdgenasError, match=message):
        load_text_splits(DataConfig(name="text", path=str(path)), 0, 32)
    config = write(tmp_path / "c.yaml", data={"name": "text", "path": str(path), "eval_tokens": None})
    assert main(["train", str(config), "--out-dir", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out" / "checkpoint.json").exists()


def test_text_batches_are_shifted_windows_sharded_and_resumable() -> None:
    stream = torch.arange(1000) % 256
    stream = stream.to(torch.uint8)
    batches = text_train_batches(stream, 16, torch.device("cpu"), seed=3, start_step=0, global_batch=6)
    first = [next(batches) for _ in range(4)]
    for x, y in first:
        assert x.shape == y.shape == (6, 16) and x.dtype == torch.long
        assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal((x[:, 0] + 1) % 256, y[:, 0])
    later = next(text_train_batches(stream, 16, torch.device("cpu"), seed=3, start_step=3, global_batch=6))
    assert torch.equal(later[0], first[3][0])
    shares = [next(text_train_batches(stream, 16, torch.device("cpu"), seed=3, start_step=0, global_batch=6,
                                      rank=r, world_size=3))[0] for r in range(3)]
    assert torch.equal(torch.cat(shares), first[0][0])
    evaluation = TextEvalBatches(stream, 16, batch_size=5, max_tokens=100, device=torch.device("cpu"))
    windows = torch.cat([x for x, _ in evaluation])
    assert evaluation.tokens == 7 * 16 and windows.shape == (7, 16)
    assert torch.equal(windows[:, 0], torch.arange(7) * 16)  # consecutive, every target once


# --- losses -----------------------------------------------------------------------------
def test_fold_and_next_token_distillation() -> None:
    x = torch.arange(2 * 12).view(2, 12)
    assert torch.equal(fold(x, 4), x.view(6, 4)) and fold(x, 12) is x
    assert fold(x, 5).shape == (4, 5)  # the 2-token tail of each window is dropped
    logits = torch.randn(3, 8, 256)
    teacher = NEXT_TOKEN.teacher(logits)
    assert NEXT_TOKEN.distill(logits, teacher).abs() < 1e-6  # KL(p || p) = 0
    other = torch.randn(3, 8, 256)
    expected = torch.nn.functional.kl_div(torch.log_softmax(other, -1), teacher, log_target=True,
                                          reduction="sum") / (3 * 8)
    assert torch.allclose(NEXT_TOKEN.distill(other, teacher), expected, atol=1e-5)


def _step_losses(archs, x, y, **kwargs) -> tuple[list[float], list[torch.Tensor]]:
    """One sandwich step on a fresh tiny supernet (weights left as they were): losses, gradients."""
    torch.manual_seed(0)
    supernet = get_space("gpt", **SPACE).build_supernet()
    idle = torch.optim.SGD(supernet.parameters(), lr=0.0)
    stats = sandwich_step(supernet, archs, x, y, idle, loss=NEXT_TOKEN, **kwargs)
    return stats.losses, [p.grad.clone() for p in supernet.parameters()]


def test_students_learn_distill_weight_from_the_teacher_and_the_rest_from_labels() -> None:
    space = get_space("gpt", **SPACE)
    torch.manual_seed(1)
    tokens = torch.randint(0, 256, (3, 65))
    x, y = tokens[:, :-1], tokens[:, 1:]
    archs = [space.largest(), space.smallest()]
    pure_kd, _ = _step_losses(archs, x, y, distill_weight=1.0)
    labels_only, grads_off = _step_losses(archs, x, y, distill=False)
    quarter, _ = _step_losses(archs, x, y, distill_weight=0.25)
    default, _ = _step_losses(archs, x, y)
    zero, grads_zero = _step_losses(archs, x, y, distill_weight=0.0)
    assert pure_kd[0] == labels_only[0] == quarter[0]  # the teacher always learns from the labels
    assert pure_kd[1] != labels_only[1]
    assert math.isclose(quarter[1], 0.25 * pure_kd[1] + 0.75 * labels_only[1], rel_tol=1e-5)
    # a language model's students learn half from the teacher unless told otherwise
    assert NEXT_TOKEN.distill_weight == 0.5
    assert math.isclose(default[1], 0.5 * pure_kd[1] + 0.5 * labels_only[1], rel_tol=1e-5)
    assert zero == labels_only and all(torch.equal(a, b) for a, b in zip(grads_zero, grads_off))
    with pytest.raises(ValueError, match="distill_weight must be in"):
        _step_losses(archs, x, y, distill_weight=1.5)


# --- training -----------------------------------------------------------------------------
def test_a_gpt_config_without_distill_weight_trains_students_half_on_labels(tmp_path: Path) -> None:
    """The loop takes the language model's default (0.5); ``distill_weight: 1`` is pure distillation.

    Near initialisation every sub-network predicts about uniformly: the KL divergence to the
    teacher is near 0 and the cross-entropy near ln(256), so the two are told apart.
    """
    student_losses = {}
    for name, changes in {"default": {}, "pure": {"distill_weight": 1.0}}.items():
        cfg = load_config(TrainConfig, write(tmp_path / f"{name}.yaml", train={"steps": 2, **changes}))
        train(cfg, tmp_path / name, progress=False)
        log = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        student_losses[name] = [loss for record in log for loss in record["losses"][1:]]
    assert all(0.4 * math.log(256) < v < 0.6 * math.log(256) for v in student_losses["default"])
    assert all(v < 0.1 for v in student_losses["pure"])


@pytest.mark.slow  # three short training runs, ~15 s
def test_gpt_resume_after_stops_is_bit_identical(tmp_path: Path) -> None:
    cfg = load_config(TrainConfig, write(tmp_path / "p.yaml", **PROGRESSIVE))
    straight = train(cfg, tmp_path / "straight", progress=False)
    for stop in (2, 4, None):  # at the heads and the width phase (both sort first), then to the end
        resumed = train(cfg, tmp_path / "resumed", max_steps=stop, progress=False)
    assert resumed.step == straight.step == 6 and resumed.fingerprint == straight.fingerprint
    a, b = read_checkpoint(tmp_path / "straight"), read_checkpoint(tmp_path / "resumed")
    assert a.meta["tied"] == {"head.proj.weight": "embed.tokens.weight"}
    for name, tensor in a.tensors.items():
        assert torch.equal(tensor, b.tensors[name]), name
    log = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in log] == ["largest", "depth", "heads", "heads", "width", "width"]
    assert all(r["tokens_per_s"] > 0 for r in log) and [len(r["losses"]) for r in log] == [1, 3, 3, 3, 3, 3]


def test_phases_of_another_space_are_refused(tmp_path: Path, capsys) -> None:
    cases = [
        ({"name": "kernel", "steps": 2}, "train.phases[0].name: kernel is not a phase of space gpt; use largest, depth, heads, width"),
        ({"name": "depth", "steps": 2, "kernels": [3]}, "train.phases[0].kernels: space gpt has no kernels"),
        ({"name": "heads", "steps": 2, "heads": [3]}, "train.phases[0].heads: heads [3] must be a non-empty subset"),
    ]
    for phase, message in cases:
        config = write(tmp_path / "c.yaml", train={"steps": None, "progressive": True, "phases": [phase]})
        assert main(["train", str(config), "--out-dir", str(tmp_path / "out"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    config = write(tmp_path / "c.yaml", train={"steps": None, "progressive": True, "phases": [
        {"name": "width", "steps": 1}, {"name": "depth", "steps": 1}]})
    assert main(["train", str(config), "--out-dir", str(tmp_path / "out"), "--quiet"]) == 2
    assert "train: phases must follow the order largest -> depth -> heads -> width" in capsys.readouterr().err


def test_data_of_the_wrong_kind_is_refused(tmp_path: Path, tiny_config, capsys) -> None:
    config = write(tmp_path / "g.yaml", data={"name": "digits", "eval_tokens": None})
    assert main(["train", str(config), "--out-dir", str(tmp_path / "a"), "--quiet"]) == 2
    assert "space gpt is a language model; use data: {name: pydoc}" in capsys.readouterr().err
    mbv3 = tiny_config(data={"name": "pydoc", "limit": None, "calibration_size": 2000})
    assert main(["train", str(mbv3), "--out-dir", str(tmp_path / "b"), "--quiet"]) == 2
    assert "data.name: pydoc is text, but space mbv3 classifies images" in capsys.readouterr().err
    image_key = write(tmp_path / "k.yaml", data={"name": "pydoc", "image_size": 32})
    assert main(["train", str(image_key), "--out-dir", str(tmp_path / "c"), "--quiet"]) == 2
    assert "image_size is for image data sets, not text" in capsys.readouterr().err


# --- evaluation and the search's accuracy ----------------------------------------------------
def test_eval_prints_loss_and_perplexity(trained_gpt: Path, capsys) -> None:
    assert main(["eval", str(trained_gpt), "--arch", "min", "--arch", "max", "--json", "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["e32c32:h1r2", "e64c64:h2r4,h2r4"]
    for row in rows:
        assert row["samples"] == 1024 and row["split"] == "validation"
        assert math.isclose(row["perplexity"], math.exp(row["loss"]), rel_tol=1e-3)
        assert 0 < row["loss"] < math.log(256) + 0.5
    assert main(["eval", str(trained_gpt), "--split", "test", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "perplexity" in captured.out and "1024 test tokens" in captured.err


def test_inherited_loss_equals_the_extracted_model(trained_gpt: Path) -> None:
    trained = load_trained(trained_gpt, "cpu")
    batches = trained.task.eval_batches("validation", 8, torch.device("cpu"))
    space = trained.space
    for arch in (space.smallest(), space.largest(), space.sample(__import__("random").Random(1))):
        inherited = next_token_loss(trained.supernet, arch, batches)
        static = next_token_loss(trained.supernet.extract(arch), None, batches, context=arch.context)
        assert inherited.samples == static.samples == 1024
        assert math.isclose(inherited.loss, static.loss, rel_tol=1e-5)


def test_search_accuracy_is_negative_loss_cached_per_checkpoint(trained_gpt: Path, tmp_path: Path) -> None:
    sha = read_checkpoint(trained_gpt).meta["sha256"]
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    source = SupernetAccuracy(trained_gpt, sha, url, batch_size=16, device="cpu")
    space = get_space("gpt", **SPACE)
    arch = space.largest()
    value, attrs = source.evaluate(arch)
    assert value == -attrs["loss"] and source.evaluated == 1
    assert math.isclose(attrs["perplexity"], math.exp(attrs["loss"])) and attrs["tokens"] == 1024
    assert source.settings["metric"] == "negative-loss" and "bn" not in source.settings
    again = SupernetAccuracy(trained_gpt, sha, url, batch_size=16, device="cpu")
    assert again.evaluate(arch) == (value, attrs) and again.evaluated == 0
    assert "_evaluator" not in again.__dict__  # a cache hit loads no model
    assert again.evaluate(space.smallest())[0] < value and again.evaluated == 1  # the smallest predicts worse


# --- bad input across spaces ---------------------------------------------------------------------
def test_a_context_longer_than_trained_is_refused(trained_gpt: Path, capsys) -> None:
    arch = json.dumps({"embed": 64, "heads": [2], "mlp_ratios": [2], "context": 128})
    assert main(["eval", str(trained_gpt), "--arch", arch, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "context 128 is longer than this supernet was trained for (64 tokens)" in err[0]


@pytest.mark.slow  # trains an mbv3 supernet and starts two searches, ~10 s
def test_checkpoints_of_the_other_space_are_refused(trained_gpt: Path, tiny_config, tmp_path: Path, capsys) -> None:
    mbv3 = tmp_path / "mbv3"
    train(load_config(TrainConfig, tiny_config(train={"steps": 1})), mbv3, progress=False)
    capsys.readouterr()
    assert main(["generate", str(mbv3), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a supernet of space mbv3, not a language model" in err[0]
    for space, checkpoint, other in (("mbv3", trained_gpt, "gpt"), ("gpt", mbv3, "mbv3")):
        code = main(["search", "--space", space, "--checkpoint", str(checkpoint), "--device", "d", "--trials", "1",
                     "--workspace", str(tmp_path / "ws"), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert f"holds a supernet of space '{other}', not '{space}'" in err[0] and f"--space {other}" in err[0]


# --- generation ----------------------------------------------------------------------------------
def test_generation_with_the_kv_cache_matches_recomputing_everything() -> None:
    space = get_space("gpt", **SPACE)
    torch.manual_seed(0)
    arch = space.largest()
    model = space.build_static(arch)
    prompt = encode("def f(x):\n    return")
    out = generate(model, prompt, 20)
    history = prompt.clone()
    with torch.no_grad():
        for token in out:  # greedy without a cache: the whole history each time
            assert int(model(history[None])[0, -1].argmax()) == int(token)
            history = torch.cat([history, token.view(1)])
    assert torch.equal(generate(model, prompt, 20, temperature=1.0, top_k=1), out)  # top-1 sampling is greedy
    a = generate(model, prompt, 30, temperature=1.0, generator=torch.Generator().manual_seed(5))
    b = generate(model, prompt, 30, temperature=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    long = generate(model, prompt, 3 * arch.context, temperature=0.7, top_k=20)  # slides past the context
    assert long.shape == (3 * arch.context,) and long.min() >= 0 and long.max() < 256


def test_generate_command_writes_text(trained_gpt: Path, capsys) -> None:
    assert main(["generate", str(trained_gpt), "--prompt", "The assert", "-n", "40", "--temperature", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("The assert") and "40 bytes in" in captured.err
    for flags in (["-n", "0"], ["--temperature", "-1"], ["--top-k", "0"]):
        with pytest.raises(SystemExit) as info:
            main(["generate", str(trained_gpt), *flags])
        assert info.value.code == 2


def test_example_gpt_configs_resolve_against_their_space() -> None:
    from nas.training.build import space_and_task
    from nas.training.phases import resolve_phases

    root = Path(__file__).resolve().parents[2] / "experiments" / "configs"
    for name, device in (("train_gpt_tiny.yaml", "cpu"), ("train_gpt_small_gpu.yaml", "cuda")):
        cfg = load_config(TrainConfig, root / name)
        assert cfg.train.device == device and cfg.space.name == "gpt" and cfg.data.name == "pydoc"
        space, task, _ = space_and_task(cfg)
        phases = resolve_phases(cfg.train, space)
        assert [p.name for p in phases] == ["largest", "depth", "heads", "width"]
        assert [p.sort_channels for p in phases] == [False, False, True, True]
        assert phases[1].choices == {n: (max(getattr(space.config, n)),) for n in ("heads", "embeds", "mlp_ratios")}
        assert task.context == space.config.max_context
