"""Running a split for real: two processes, TCP on 127.0.0.1, the link enforced in software."""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pytest
import torch
from split_helpers import worker_processes

from nas.errors import EdgenasError
from nas.split import Link, RunSettings, load_pair, plan_split, run_split, run_split_links
from nas.split.parts import compile_part, split_network
from nas.split.run import CloudLink
from nas.split.worker import EXIT_AT_VAR

pytestmark = pytest.mark.slow  # each test starts a second Python process (torch import, a few seconds)


@pytest.fixture(scope="module")
def pair(pair_workspace):
    return load_pair(pair_workspace, "edge", "cloud")


def _workers() -> list:
    return worker_processes()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_two_parts_compute_the_whole_network(pair, small_space, precision):
    arch = small_space.largest()
    model = small_space.build_static(arch).eval()
    position = 9
    edge_part, _ = split_network(small_space, arch, model, position)
    edge = compile_part(edge_part, pair.edge.profile)
    x = small_space.example_input(arch).numpy()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    with CloudLink(small_space, arch, model, position, pair.cloud.profile, Link(1e9, 0.0), precision=precision) as cloud:
        cloud.connect()
        reply, sent = cloud.request(edge.run(x))
    assert sent == small_space.cuts(arch)[position].elements * (4 if precision == "fp32" else 1)
    if precision == "fp32":
        assert np.allclose(reply.array, expected, atol=1e-4)
    else:
        assert np.abs(reply.array - expected).max() < 0.1 * np.abs(expected).max()
    assert reply.cpu_ms > 0 and reply.wall_ms >= reply.cpu_ms * 0.5
    assert not _workers()


def test_measured_link_time_follows_the_link(pair, small_space):
    """At 2 Mbit/s and 30 ms, then 20 Mbit/s and 5 ms (the same processes, relinked), what the
    run measures besides compute must be the modelled round trip and transfers (plus a few
    ms of scheduling on a loaded machine)."""
    arch = small_space.smallest()
    links = [Link(2e6, 30.0), Link(20e6, 5.0)]
    model = small_space.build_static(arch)
    results = run_split_links(small_space, arch, model, 4, pair.edge.profile, pair.cloud.profile, links,
                              settings=RunSettings(requests=6, warmup=1))
    for link, result in zip(links, results):
        predicted = plan_split(small_space, arch, pair.edge, pair.cloud, link).point(4).link_ms
        measured = result.summary()["link_ms"]["median"]
        # never faster than the link allows; at most a few ms of scheduling on a loaded 2-core machine
        assert predicted <= measured < predicted + 10.0, (link, predicted, measured)
        assert result.summary()["n"] == 6 and result.link["label"] == link.label()
    assert not _workers()


def test_a_cloud_that_dies_mid_request_is_one_line_and_nothing_hangs(pair, small_space, monkeypatch):
    monkeypatch.setenv(EXIT_AT_VAR, "2")
    arch = small_space.smallest()
    start = time.monotonic()
    with pytest.raises(EdgenasError, match="stopped mid-request") as err:
        run_split(small_space, arch, small_space.build_static(arch), 3, pair.edge.profile, pair.cloud.profile,
                  Link(1e8, 1.0), settings=RunSettings(requests=5, warmup=0, request_timeout_s=30))
    assert "\n" not in str(err.value) and time.monotonic() - start < 60
    assert not _workers()


def test_a_port_in_use_is_one_line(pair, small_space):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        arch = small_space.smallest()
        with pytest.raises(EdgenasError, match=f"127.0.0.1:{port} is already in use"):
            run_split(small_space, arch, small_space.build_static(arch), 3, pair.edge.profile, pair.cloud.profile,
                      Link(1e8, 1.0), settings=RunSettings(requests=1, port=port))
    assert not _workers()


def test_edge_only_runs_without_a_cloud_process(pair, small_space):
    arch = small_space.smallest()
    last = len(small_space.cuts(arch)) - 1
    result = run_split(small_space, arch, small_space.build_static(arch), last, pair.edge.profile,
                       pair.cloud.profile, Link(1e6, 50.0), settings=RunSettings(requests=3, warmup=1))
    s = result.summary()
    assert s["link_ms"]["median"] == 0 and s["e2e_ms"]["median"] < 50 and result.cloud_how.startswith("nothing")


def test_a_tvm_profiled_part_is_compiled_with_tvm_and_computes_the_same(small_space):
    pytest.importorskip("tvm")
    from latency_predictors.device_profile import DeviceProfile

    space = small_space
    arch = space.smallest()
    model = space.build_static(arch).eval()
    profile = DeviceProfile(name="tvm-cpu", space=space.describe(), target={"kind": "llvm", "num-cores": 1},
                            reached={"kind": "local"}, backend="tvm")
    _, cloud_part = split_network(space, arch, model, len(space.cuts(arch)) - 4)
    cores = os.sched_getaffinity(0)
    compiled = compile_part(cloud_part, profile)
    assert compiled.how.startswith("TVM")
    x = torch.randn(1, *cloud_part.input_shape)
    with torch.no_grad():
        expected = cloud_part.module(x).numpy()
    assert np.allclose(compiled.run(x.numpy()), expected, atol=1e-4)
    # the edge part runs in the caller's process: TVM's binding must not outlive the call
    assert os.sched_getaffinity(0) == cores


def test_a_language_model_splits_too(tmp_path):
    """gpt: token ids go up as integers, hidden states come back as floats; tied weights survive."""
    from split_helpers import synthetic_device

    from nas.workspace import Workspace
    from search_spaces import get_space

    space = get_space("gpt", preset="tiny")
    ws = Workspace(tmp_path)
    synthetic_device(ws, "e", space, ms_per_mflop=1.0, nets=4)
    synthetic_device(ws, "c", space, ms_per_mflop=0.05, nets=4)
    pair = load_pair(ws, "e", "c")
    arch = space.largest()
    model = space.build_static(arch).eval()
    tokens = space.example_input(arch)
    with torch.no_grad():
        expected = model(tokens).numpy()
    for position in (0, 3):
        edge_part, _ = split_network(space, arch, model, position)
        edge = compile_part(edge_part, pair.edge.profile)
        with CloudLink(space, arch, model, position, pair.cloud.profile, Link(1e9, 0.0)) as cloud:
            cloud.connect()
            reply, sent = cloud.request(edge.run(tokens.numpy()))
        assert np.allclose(reply.array, expected, atol=1e-4)
        assert sent == (4 * tokens.numel() if position == 0 else 4 * space.cuts(arch)[3].elements)
    assert not _workers()


def test_a_tvm_part_fed_token_ids_is_compiled_for_int64():
    """gpt's edge part starts at the embedding: TVM compiles it for int64 ids, not floats."""
    pytest.importorskip("tvm")
    from latency_predictors.device_profile import DeviceProfile
    from search_spaces import get_space

    space = get_space("gpt", preset="tiny", contexts=(16,), embeds=(32,), depths=(1,), heads=(1,), mlp_ratios=(2,))
    arch = space.smallest()
    model = space.build_static(arch).eval()
    profile = DeviceProfile(name="tvm-cpu", space=space.describe(), target={"kind": "llvm", "num-cores": 1},
                            reached={"kind": "local"}, backend="tvm")
    edge_part, _ = split_network(space, arch, model, 2)  # embedding and the first attention block
    assert edge_part.integer_input
    compiled = compile_part(edge_part, profile)
    assert compiled.how.startswith("TVM")
    ids = space.example_input(arch)
    with torch.no_grad():
        expected = edge_part.module(ids).numpy()
    assert np.allclose(compiled.run(ids.numpy()), expected, atol=1e-4)
