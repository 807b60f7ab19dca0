"""The ``nb201`` space: index order against the benchmark's table, parsing, costs, modules."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from latency_predictors.nb201_table import ENV_VAR, load_nb201_latency, nb201_data_dir
from nas.tabular import load_nb201_accuracy
from search_spaces import get_space
from search_spaces.nb201 import NUM_ARCHS, OPS, NB201Arch, NB201Space

CELL1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return get_space("nb201")


def test_index_order_matches_benchmark_table(space: NB201Space) -> None:
    """Every packaged index maps to the cell string the accuracy CSV gives it, and back."""
    table = load_nb201_accuracy()
    archs = space.enumerate()
    assert len(archs) == NUM_ARCHS == len(set(archs))
    assert [a.to_str() for a in archs] == list(table.cellstrs)
    assert all(NB201Arch.from_str(c).index == i for i, c in enumerate(table.cellstrs))
    assert load_nb201_latency().cellstrs == table.cellstrs


def test_parse_forms_round_trip(space: NB201Space) -> None:
    arch = NB201Arch.from_str(CELL1)
    assert arch.index == 1 and NB201Arch.from_index(1) == arch and str(arch) == CELL1
    for form in (1, "1", CELL1, arch.to_json(), json.dumps(arch.to_json())):
        assert space.arch_from_json(form) == arch
    assert NB201Arch.from_json(json.loads(json.dumps(arch.to_json()))) == arch
    assert hash(arch) == hash(NB201Arch(tuple(arch.ops)))
    with pytest.raises(AttributeError):
        arch.ops = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad, match",
    [
        (NUM_ARCHS, "out of range"),
        (-1, "out of range"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown nb201 op"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "expected '~0'"),
        ("hello", "not an nb201 arch"),
        ({"ops": ["none"] * 5}, "6 edges"),
        ({"edges": []}, "JSON object"),
    ],
)
def test_bad_input_is_one_line_value_error(space: NB201Space, bad: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        space.arch_from_json(bad)
    assert "\n" not in str(info.value)


def test_missing_data_dir_names_env_var(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        nb201_data_dir()


def test_encode_suggest_sample(space: NB201Space) -> None:
    rng = random.Random(0)
    archs = {space.sample(rng) for _ in range(200)}
    assert len(archs) > 190
    vecs = np.stack([space.encode(a) for a in archs])
    assert vecs.shape == (len(archs), len(space.feature_names())) == (len(archs), 30)
    assert np.all(vecs.reshape(len(archs), 6, 5).sum(-1) == 1)

    class FixedTrial:
        def __init__(self) -> None:
            self.names: list[str] = []

        def suggest_categorical(self, name: str, choices: list[str]) -> str:
            assert list(choices) == list(OPS)
            self.names.append(name)
            return choices[len(self.names) % len(choices)]

    trial = FixedTrial()
    arch = space.suggest(trial)
    assert len(set(trial.names)) == 6 and arch.codes == (1, 2, 3, 4, 0, 1)


def test_costs_match_fvcore_and_extremes(space: NB201Space) -> None:
    from fvcore.nn import FlopCountAnalysis

    for arch in (space.largest(), NB201Arch.from_index(1), space.sample(random.Random(3))):
        model = space.build_static(arch)
        counter = FlopCountAnalysis(model, torch.randn(1, *space.input_shape(arch)))
        counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        ops = counter.by_operator()
        assert space.flops(arch) == ops.get("conv", 0) + ops.get("linear", 0)
        assert space.flops(arch) == sum(b.flops for b in space.blocks(arch))
        assert space.params(arch) == sum(p.numel() for p in model.parameters())
    flops = [space.flops(a) for a in space.enumerate()]
    assert space.flops(space.smallest()) == min(flops)
    assert space.flops(space.largest()) == max(flops) == 220_119_680  # the benchmark's 220.12 M


def test_blocks_build_at_their_shapes(space: NB201Space) -> None:
    arch = space.largest()
    blocks = space.blocks(arch)
    assert blocks[0].kind == "stem" and blocks[-1].kind == "head"
    assert sum(b.kind == "res_reduction" for b in blocks) == 2
    assert sum(b.kind == "relu_conv_bn" for b in blocks) == 3 * 5 * 6
    kinds = {b.key(): b for a in (arch, NB201Arch.from_index(1)) for b in space.blocks(a)}
    for block in kinds.values():
        module = space.build_block(block)
        out = module(torch.randn(1, *block.in_shape))
        if block.kind != "head":
            assert tuple(out.shape[1:]) == block.out_shape
        assert sum(p.numel() for p in module.parameters()) == block.params


def test_built_network_runs_for_degenerate_cells(space: NB201Space) -> None:
    for arch in (space.smallest(), NB201Arch(("skip_connect",) + ("none",) * 5)):
        logits = space.build_static(arch)(torch.randn(2, 3, 32, 32))
        assert logits.shape == (2, 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    "cell, dead",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         (0, 0, 0, 0)),
        # node 1 feeds nothing: its conv never reaches the output
        ("|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|", (0, 0, 1, 0)),
        # node 2 feeds nothing, so neither its pool nor the edge 1->2 is live
        ("|skip_connect~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|", (1, 0, 0, 1)),
    ],
)
def test_dead_op_counts(cell: str, dead: tuple[int, ...]) -> None:
    arch = NB201Arch.from_str(cell)
    assert arch.dead_op_counts() == dead
    assert all(d <= c for d, c in zip(arch.dead_op_counts(), arch.op_counts()))
