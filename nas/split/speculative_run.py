"""Speculative decoding for real: the draft here, the verifier in a second process, over the link.

The cloud process (:mod:`nas.split.worker` with a ``verifier`` spec, served by
:func:`serve_verifier`) holds the largest network and its KV cache. The edge sends the
prompt (``PROMPT``; while it travels the edge prefills its draft), gets the first token
back, and then per round drafts ``k`` tokens and sends them (``REQUEST``: ``k`` int32 ids);
the answer is ``accepted, next token, room`` (three int32, ``room`` = drafts the next
round may carry before the verifier's window slides). Each verification is one round
trip through the software-enforced link (rate and RTT, :mod:`nas.split.wire`).

:func:`run_decoding` times three ways of writing the same number of tokens after each
prompt, on every link: **edge only** (the draft alone: fast, but another model's text),
**cloud only** (``STREAM``: the prompt goes up, the cloud decodes and sends each token
back as soon as it has it) and **speculative** (edge drafts, cloud verifies). Both cloud
ways must write the verifier's greedy output; each is compared token for token with
:func:`nas.generate.generate` of the verifier run here.

A cloud process that dies mid-request, or does not answer within
``request_timeout_s``, is one :class:`~nas.errors.EdgenasError` line; nothing waits forever.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import EdgenasError
from nas.split.link import Link
from nas.split.run import RunSettings, WorkerLink, save_weights
from nas.split.speculative import Drafter, Verifier


class VerifierLink(WorkerLink):
    """The verifier in a second process, reached through the emulated link.

    Example::

        with VerifierLink(space, verifier_model, link) as cloud:
            cloud.connect()
            first, room = cloud.prefill(prompt_ids)
            accepted, token, room = cloud.verify(drafts)
    """

    def __init__(self, space: Any, model: torch.nn.Module, link: Link, settings: RunSettings = RunSettings(),
                 threads: int = 1) -> None:
        super().__init__(link, settings)
        self.space, self.model, self.threads = space, model, threads
        self.last: Any = None  # the last answer (its compute time: wall_ms, cpu_ms)

    def spec(self, tmp: Path) -> tuple[dict[str, Any], str]:
        weights = save_weights(self.model, tmp / "verifier.safetensors")
        return {"role": "verifier", "space": self.space.describe(), "arch": self.space.arch_to_json(self.model.arch),
                "weights": str(weights), "link": self.link.to_json(), "port": self.settings.port,
                "threads": self.threads, "start_timeout_s": self.settings.start_timeout_s,
                "idle_timeout_s": self.settings.request_timeout_s + 30.0}, str(self.threads)

    def _ids(self, reply: Any, count: int) -> list[int]:
        values = [] if reply.array is None else [int(v) for v in np.asarray(reply.array).ravel()]
        if len(values) != count:
            raise EdgenasError(f"the cloud process sent {len(values)} numbers where {count} were expected")
        self.last = reply
        return values

    def prefill(self, prompt: Sequence[int]) -> tuple[int, int]:
        """Send the prompt; ``(first token, room)``."""
        from nas.split.wire import PROMPT

        n, _ = self.send(np.asarray(prompt, dtype=np.int32), PROMPT)
        return self.finish_prefill(n)

    def finish_prefill(self, n: int) -> tuple[int, int]:
        token, room = self._ids(self.receive(n), 2)
        return token, room

    def verify(self, drafts: Sequence[int]) -> tuple[int, int, int]:
        """Send ``drafts``; ``(accepted, next token, room)``."""
        reply, _ = self.request(np.asarray(drafts, dtype=np.int32))
        accepted, token, room = self._ids(reply, 3)
        return accepted, token, room

    def stream(self, prompt: Sequence[int], tokens: int, t0: float) -> tuple[list[int], float, float]:
        """Cloud only: the cloud writes ``tokens`` tokens after ``prompt`` and sends each as it
        has it; returns them, when the first arrived (``perf_counter`` seconds after ``t0``)
        and the cloud's compute (ms, its wall clock)."""
        from nas.split.wire import STREAM

        n, _ = self.send(np.asarray([tokens, *prompt], dtype=np.int32), STREAM)
        out, first, compute = [], 0.0, 0.0
        for i in range(tokens):
            out += self._ids(self.receive(n), 1)
            compute += self.last.wall_ms
            if i == 0:
                first = time.perf_counter() - t0
        return out, first, compute


def serve_verifier(listener: socket.socket, spec: dict[str, Any], exit_at: int = 0) -> int:
    """The cloud process of speculative decoding (``python -m nas.split.worker SPEC.json``).

    ``exit_at`` N > 0 makes it exit without answering when request N arrives (the worker
    reads it from ``EDGENAS_SPLIT_EXIT_AT``: the tests' cloud that dies mid-request)."""
    from safetensors.torch import load_file

    from nas.split import wire
    from search_spaces import space_from_description

    torch.set_num_threads(int(spec.get("threads", 1)))
    space = space_from_description(spec["space"])
    model = space.build_static(space.arch_from_json(spec["arch"]))
    model.load_state_dict(load_file(spec["weights"]))
    verifier = Verifier(model.eval())
    print(f"COMPILED torch eager, {torch.get_num_threads()} thread(s), verifier {model.arch}", flush=True)
    peer = wire.accept_peer(listener, spec)
    if peer is None:
        print("ERROR no edge connected", flush=True)
        return 1
    idle = float(spec["idle_timeout_s"])
    served = 0

    def answer(msg_id: int, values: list[int], t0: float, c0: float) -> None:
        peer.send(wire.REPLY, msg_id, np.asarray(values, dtype=np.int32), wall_ms=(time.perf_counter() - t0) * 1e3,
                  cpu_ms=(time.thread_time() - c0) * 1e3)

    try:
        while True:
            msg = peer.receive(time.monotonic() + idle)
            ids = [] if msg.array is None else [int(v) for v in msg.array.ravel()]
            if msg.kind in (wire.PROMPT, wire.REQUEST, wire.STREAM):
                served += 1
                if exit_at and served == exit_at:
                    os._exit(3)  # dies mid-request, as a crashed cloud would
            t0, c0 = time.perf_counter(), time.thread_time()
            if msg.kind == wire.HELLO:
                peer.send(wire.READY, msg.id)
            elif msg.kind == wire.PROMPT and ids:
                token = verifier.prefill(ids)
                answer(msg.id, [token, verifier.room()], t0, c0)
            elif msg.kind == wire.REQUEST and verifier.cache is not None:
                accepted, token = verifier.verify(ids)
                answer(msg.id, [accepted, token, verifier.room()], t0, c0)
            elif msg.kind == wire.STREAM and len(ids) > 1:
                count, prompt = ids[0], ids[1:]
                answer(msg.id, [verifier.prefill(prompt)], t0, c0)
                for _ in range(count - 1):
                    t0, c0 = time.perf_counter(), time.thread_time()
                    answer(msg.id, [verifier.verify([])[1]], t0, c0)
            elif msg.kind == wire.RELINK:
                rate, rtt = (float(v) for v in msg.array)
                peer.send(wire.READY, msg.id)
                peer.link = Link(rate, rtt)
            elif msg.kind == wire.BYE:
                return 0
            else:
                peer.send(wire.ERROR, msg.id)
    except (wire.LinkClosed, wire.LinkTimeout):
        return 0
    finally:
        peer.close()


@dataclass
class DecodeRun:
    """One way of decoding (``edge_only``, ``cloud_only`` or ``speculative``) over one link:
    a record per prompt and the tokens written."""

    mode: str
    link: dict[str, Any]
    draft_length: int
    records: list[dict[str, float]] = field(default_factory=list)
    outputs: list[list[int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Tokens/s after the first token (all prompts' tokens over their time), time to the
        first token (median), acceptance (accepted over drafted, all prompts) and the
        per-token acceptance ``alpha`` it implies (accepted drafts over accepted drafts and
        first rejections: the drafts after a rejection are never judged)."""
        r = self.records
        decode_s = sum(x["total_ms"] - x["ttft_ms"] for x in r) / 1e3
        out = {"prompts": len(r), "tokens": int(sum(x["tokens"] for x in r)),
               "tokens_per_s": sum(x["tokens"] - 1 for x in r) / decode_s if decode_s > 0 else float("nan"),
               "ttft_ms": float(np.median([x["ttft_ms"] for x in r])) if r else float("nan"),
               "total_ms": float(np.median([x["total_ms"] for x in r])) if r else float("nan")}
        drafted = sum(x.get("drafted", 0) for x in r)
        if self.mode == "speculative":
            rounds = sum(x["rounds"] for x in r)
            accepted, rejected = sum(x["accepted"] for x in r), sum(x["rejected"] for x in r)
            out.update({"acceptance": accepted / drafted if drafted else 0.0, "rounds": rounds,
                        "alpha": accepted / (accepted + rejected) if accepted + rejected else 0.0,
                        "tokens_per_round": (sum(x["tokens"] for x in r) - len(r)) / rounds if rounds else 0.0})
        if self.mode != "edge_only":
            out["cloud_ms_per_token"] = sum(x["cloud_ms"] for x in r) / max(1, out["tokens"])
        return out

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "link": self.link, "draft_length": self.draft_length, "summary": self.summary(),
                "records": self.records}


def _edge_only(draft: torch.nn.Module, prompt: list[int], tokens: int) -> tuple[list[int], dict[str, float]]:
    edge = Drafter(draft)
    t0 = time.perf_counter()
    out = [edge.prefill(prompt)]
    first = time.perf_counter() - t0
    while len(out) < tokens:
        edge.commit(0, out[-1])
        out.append(edge.draft(1)[0])
    total = time.perf_counter() - t0
    return out, {"ttft_ms": first * 1e3, "total_ms": total * 1e3, "tokens": len(out)}


def _cloud_only(cloud: VerifierLink, prompt: list[int], tokens: int) -> tuple[list[int], dict[str, float]]:
    t0 = time.perf_counter()
    out, first, compute = cloud.stream(prompt, tokens, t0)
    total = time.perf_counter() - t0
    return out, {"ttft_ms": first * 1e3, "total_ms": total * 1e3, "tokens": len(out), "cloud_ms": compute}


def _speculative(cloud: VerifierLink, draft: torch.nn.Module, prompt: list[int], tokens: int,
                 k: int) -> tuple[list[int], dict[str, float]]:
    from nas.split.wire import PROMPT

    edge = Drafter(draft)
    t0 = time.perf_counter()
    n, _ = cloud.send(np.asarray(prompt, dtype=np.int32), PROMPT)
    edge.prefill(prompt)  # while the prompt travels and the cloud prefills
    token, room = cloud.finish_prefill(n)
    first = time.perf_counter() - t0
    cloud_ms, draft_ms = cloud.last.wall_ms, 0.0
    out = [token]
    edge.commit(0, token)
    rounds = drafted = accepted = rejected = 0
    while len(out) < tokens:
        d0 = time.perf_counter()
        drafts = edge.draft(min(k, room, tokens - len(out) - 1))
        draft_ms += (time.perf_counter() - d0) * 1e3
        a, token, room = cloud.verify(drafts)
        cloud_ms += cloud.last.wall_ms
        edge.commit(a, token)
        out += drafts[:a] + [token]
        rounds, drafted, accepted = rounds + 1, drafted + len(drafts), accepted + a
        rejected += a < len(drafts)
    total = (time.perf_counter() - t0) * 1e3
    return out[:tokens], {"ttft_ms": first * 1e3, "total_ms": total, "tokens": min(len(out), tokens),
                          "rounds": rounds, "drafted": drafted, "accepted": accepted, "rejected": rejected,
                          "draft_ms": draft_ms,
                          "cloud_ms": cloud_ms, "link_ms": total - draft_ms - cloud_ms}


def run_decoding(space: Any, draft: torch.nn.Module, verifier: torch.nn.Module, prompts: Sequence[Sequence[int]],
                 tokens: int, links: Sequence[Link], draft_lengths: Sequence[int], *,
                 compare: Sequence[int] = (), settings: RunSettings = RunSettings(), threads: int = 1,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Edge only once, then cloud only and speculative (``draft_lengths[i]`` drafts per round
    on ``links[i]``, and each length in ``compare`` too) over each link, ``tokens`` tokens
    after every prompt; one warm-up prompt per way, untimed. Returns the runs and whether
    every cloud-side output equals the verifier's greedy output (:func:`nas.generate.generate`
    here)."""
    from nas.generate import generate

    say = log or (lambda _line: None)
    if len(links) != len(draft_lengths) or not links:
        raise EdgenasError("give one draft length per link")
    prompts = [[int(t) for t in p] for p in prompts]
    reference = [generate(verifier, torch.tensor(p), tokens).tolist() for p in prompts]
    runs: list[DecodeRun] = []
    edge_run = DecodeRun("edge_only", {"label": "none"}, 0)
    _edge_only(draft, prompts[0], tokens)  # warm-up
    for p in prompts:
        out, record = _edge_only(draft, p, tokens)
        edge_run.records.append(record)
        edge_run.outputs.append(out)
    runs.append(edge_run)
    say(f"edge only: {edge_run.summary()['tokens_per_s']:.1f} tokens/s")
    with VerifierLink(space, verifier, links[0], settings, threads) as cloud:
        say(f"cloud process {cloud.pid} on 127.0.0.1:{cloud.port}: {cloud.connect()}")
        for link, k in zip(links, draft_lengths):
            if link != cloud.link:
                cloud.relink(link)
            ways = [("cloud_only", 0), ("speculative", k)] + [("speculative", n) for n in compare if n != k]
            for mode, length in ways:
                run = DecodeRun(mode, link.to_json(), length)
                for i, p in enumerate([prompts[0], *prompts]):
                    out, record = (_cloud_only(cloud, p, tokens) if mode == "cloud_only"
                                   else _speculative(cloud, draft, p, tokens, length))
                    if i:  # the first is a warm-up
                        run.records.append(record)
                        run.outputs.append(out)
                runs.append(run)
                s = run.summary()
                say(f"{mode} over {link.label()}" + (f" (k={length})" if mode == "speculative" else "") +
                    f": {s['tokens_per_s']:.1f} tokens/s, first token {s['ttft_ms']:.1f} ms")
    identical = {f"{r.mode}@{r.link['label']}" + (f"/k={r.draft_length}" if r.mode == "speculative" else ""):
                 r.outputs == reference for r in runs if r.mode != "edge_only"}
    agree = [np.mean([a == b for a, b in zip(o, ref)]) for o, ref in zip(edge_run.outputs, reference)]
    return {"runs": [r.to_json() for r in runs], "identical": identical, "all_identical": all(identical.values()),
            "edge_only_agreement": float(np.mean(agree)), "reference": "nas.generate.generate of the verifier, "
            "greedy, in the edge's process", "prompt_tokens": [len(p) for p in prompts], "tokens": tokens,
            "measured_how": "wall clock on this machine; edge in this process, verifier in a second process "
                            "(torch eager), TCP on 127.0.0.1 through the software link"}


__all__ = ["DecodeRun", "VerifierLink", "run_decoding", "serve_verifier"]
