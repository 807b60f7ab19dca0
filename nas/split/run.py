"""Run a split for real: the edge part here, the cloud part in a second process, over TCP on
127.0.0.1 through the emulated link, and time end-to-end requests.

:func:`run_split` starts the cloud process (:mod:`nas.split.worker`), compiles the edge
part meanwhile, sends ``warmup`` untimed and then ``requests`` timed requests one after
another, and stops the cloud process whatever happens (``BYE``, then SIGTERM, then
SIGKILL). Each request records its end-to-end wall time and, beside it, the compute of
each side on the wall clock and on its thread's CPU clock: on a shared machine other
processes stretch the wall time of compute, and ``e2e_cpu_ms`` (the end-to-end time with
each side's compute counted on its CPU clock, the way CPU-clock profiles measure) shows
how much.

Each side whose device profile records a reference network is also drift corrected
(:mod:`nas.split.drift`): one run of the reference is timed beside each request's compute
(the edge's here, the cloud's in its process), and the request records the readings
(``edge_ref_ms``, ``edge_ref_cpu_ms``, ``edge_drift``; the same for ``cloud``), the
corrected compute (``edge_corrected_ms`` = raw / reference now x baseline, on the
profile's clock; = raw without a reference) and ``e2e_corrected_ms`` = corrected edge +
measured link + corrected cloud. The reference runs are left out of every raw figure;
``RunResult.drift`` says how each side was corrected.

A cloud process that dies mid-request, or stops answering for ``request_timeout_s``,
is reported in one line (:class:`~nas.errors.EdgenasError`); nothing waits forever.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import EdgenasError
from nas.split.drift import Compute, DriftReference, SideCorrection, paired_compute
from nas.split.link import Link
from nas.split.parts import compile_part, split_network

WORKER_MARK = "EDGENAS_SPLIT_WORKER"
"""Set in the cloud process's environment (to the edge's pid): how its processes are recognised."""


@dataclass(frozen=True)
class RunSettings:
    """How many requests, on which port, with which deadlines."""

    requests: int = 20
    warmup: int = 3
    port: int = 0
    start_timeout_s: float = 600.0
    request_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.requests < 1 or self.warmup < 0:
            raise EdgenasError(f"--requests must be at least 1 (got {self.requests}) and warm-up at least 0")
        if not 0 <= self.port <= 65535:
            raise EdgenasError(f"--port {self.port}: use 1-65535, or 0 for a free port")


@dataclass
class RunResult:
    """What a split run measured: per-request records, how each part ran, and how each
    side's compute was drift corrected (``drift``: ``{"edge": ..., "cloud": ...}``)."""

    position: int
    link: dict[str, Any]
    precision: str
    edge_how: str
    cloud_how: str
    requests: list[dict[str, float]] = field(default_factory=list)
    drift: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Median and 95th percentile of every recorded figure."""
        out: dict[str, Any] = {"n": len(self.requests)}
        for key in (self.requests[0] if self.requests else {}):
            values = np.asarray([r[key] for r in self.requests], dtype=float)
            out[key] = {"median": float(np.median(values)), "p95": float(np.percentile(values, 95)),
                        "mean": float(values.mean())}
        return out

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary(),
                "measured_how": "wall clock on this machine, edge in this process, cloud in a second process, "
                                "TCP on 127.0.0.1 through the software link"}


def run_split(space: Any, arch: Any, module: torch.nn.Module, position: int, edge_profile: Any, cloud_profile: Any,
              link: Link, *, precision: str = "fp32", settings: RunSettings = RunSettings(),
              inputs: np.ndarray | None = None, log: Any = None) -> RunResult:
    """Split ``module`` (a plain module of ``arch``) at cut ``position`` and time it for real.

    ``inputs`` (batch of one each, cycled) default to ``space.example_input``. ``log`` is a
    callable for progress lines (``None``: silent).
    """
    return run_split_links(space, arch, module, position, edge_profile, cloud_profile, [link], precision=precision,
                           settings=settings, inputs=inputs, log=log)[0]


def run_split_links(space: Any, arch: Any, module: torch.nn.Module, position: int, edge_profile: Any,
                    cloud_profile: Any, links: Sequence[Link], *, precision: str = "fp32",
                    settings: RunSettings = RunSettings(), inputs: np.ndarray | None = None,
                    log: Any = None) -> list[RunResult]:
    """:func:`run_split` over several links, one after another, compiling each part once."""
    say = log or (lambda _line: None)
    edge_part, cloud_part = split_network(space, arch, module.eval(), position)
    if inputs is None:
        gen = torch.Generator().manual_seed(0)
        inputs = np.stack([space.example_input(arch, generator=gen)[0].numpy() for _ in range(4)])
    edge_side = SideCorrection.of(edge_profile, ran=edge_part.module is not None)
    cloud_side = SideCorrection.of(cloud_profile, ran=cloud_part.module is not None)
    drift = {"edge": edge_side.to_json(), "cloud": cloud_side.to_json()}
    if cloud_part.module is None:
        edge = compile_part(edge_part, edge_profile)
        say(f"edge part: {edge.how}")
        edge_ref = DriftReference.for_profile(edge_profile)
        results = []
        for link in links:
            results.append(RunResult(position, link.to_json(), precision, edge.how, "nothing to run (edge only)",
                                     drift=drift))
            _time_edge_only(edge, inputs, settings, results[-1], edge_ref, edge_side, cloud_side)
        return results
    results = []
    with CloudLink(space, arch, module, position, cloud_profile, links[0], settings, precision) as cloud:
        say(f"cloud process {cloud.pid} listening on 127.0.0.1:{cloud.port}; compiling both parts")
        edge = compile_part(edge_part, edge_profile)  # while the cloud process compiles its part
        edge_ref = DriftReference.for_profile(edge_profile) if edge_part.module is not None else None
        say(f"edge part: {edge.how}")
        cloud_how = cloud.connect()
        say(f"cloud part: {cloud_how}")
        for link in links:
            if link != cloud.link:
                cloud.relink(link)
            result = RunResult(position, link.to_json(), precision, edge.how, cloud_how, drift=drift)
            timed = []
            for i in range(settings.warmup + settings.requests):
                x = inputs[i % len(inputs)][None]
                t0 = time.perf_counter()
                activation, edge_compute = paired_compute(edge.run, x, edge_ref, i)
                reply, sent = cloud.request(activation)
                t2 = time.perf_counter()
                if i >= settings.warmup:
                    timed.append((reply.id, (t2 - t0) * 1e3 - (edge_compute.ref_wall_ms or 0.0), edge_compute,
                                  reply, sent))
            readings = cloud.readings()
            for n, total_ms, edge_compute, reply, sent in timed:
                ref_wall, ref_cpu = readings.get(n, (None, None))
                if cloud_side.baseline_ms is not None and ref_wall is None:
                    raise EdgenasError(f"the cloud process sent no reference reading for request {n}")
                cloud_compute = Compute(reply.wall_ms, reply.cpu_ms, ref_wall, ref_cpu)
                e2e = total_ms - (ref_wall or 0.0)  # the cloud's reference ran before its reply left
                result.requests.append(_record(e2e, edge_compute, cloud_compute, float(sent), edge_side, cloud_side))
            results.append(result)
    return results


def _record(e2e: float, edge: Compute, cloud: Compute, up_bytes: float, edge_side: SideCorrection,
            cloud_side: SideCorrection) -> dict[str, float]:
    """One request's figures: raw (wall and CPU clock), and each side's drift correction."""
    link = e2e - edge.wall_ms - cloud.wall_ms
    record = {"e2e_ms": e2e, "edge_ms": edge.wall_ms, "edge_cpu_ms": edge.cpu_ms, "cloud_ms": cloud.wall_ms,
              "cloud_cpu_ms": cloud.cpu_ms, "link_ms": link, "e2e_cpu_ms": link + edge.cpu_ms + cloud.cpu_ms,
              "up_bytes": up_bytes}
    record.update(edge_side.fields("edge", edge))
    record.update(cloud_side.fields("cloud", cloud))
    record["e2e_corrected_ms"] = record["edge_corrected_ms"] + link + record["cloud_corrected_ms"]
    return record


class WorkerLink:
    """A second process (:mod:`nas.split.worker`) reached through the emulated link; a
    context manager that always stops the process. Subclasses say what the process serves
    (:meth:`spec`): :class:`CloudLink` a split's cloud part,
    :class:`~nas.split.speculative_run.VerifierLink` a speculative-decoding verifier."""

    def __init__(self, link: Link, settings: RunSettings = RunSettings(), precision: str = "fp32") -> None:
        self.link, self.settings, self.precision = link, settings, precision
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: CloudProcess | None = None
        self._peer: Any = None
        self._next_id = 0
        self.port = 0

    def spec(self, tmp: Path) -> tuple[dict[str, Any], str]:
        """The worker's JSON spec (files it needs written under ``tmp``) and its thread count."""
        raise NotImplementedError  # pragma: no cover - every subclass defines it

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else 0

    def __enter__(self) -> WorkerLink:
        self._tmp = tempfile.TemporaryDirectory(prefix="edgenas-split-")
        try:
            spec, threads = self.spec(Path(self._tmp.name))
            self._proc, self.port = launch_worker(Path(self._tmp.name), spec, threads, self.settings)
        except BaseException:
            self._tmp.cleanup()
            raise
        return self

    def connect(self) -> str:
        """Wait for the process to build (compile) what it serves and answer; returns how it runs it."""
        assert self._proc is not None, "use the link as a context manager"
        self._peer, how = _connect(self._proc, self.port, self.link, self.settings)
        return how

    def relink(self, link: Link) -> None:
        """Switch both ends to ``link`` (what the process serves stays loaded: a sweep over links)."""
        from nas.split.wire import READY, RELINK, LinkClosed, LinkTimeout

        self._next_id += 1
        try:
            self._peer.send(RELINK, self._next_id, np.array([link.rate_bps, link.rtt_ms], dtype=np.float32))
            reply = self._peer.receive(time.monotonic() + self.settings.request_timeout_s)
        except (LinkClosed, LinkTimeout, OSError) as exc:
            raise EdgenasError(f"the cloud process did not take the new link ({exc})") from None
        if reply.kind != READY:
            raise EdgenasError("the cloud process answered the new link with something else")
        self._peer.link = self.link = link

    def readings(self) -> dict[int, tuple[float, float]]:
        """The reference readings the process took since the last call, by request id:
        ``(wall ms, CPU ms)`` (empty when it times no reference)."""
        from nas.split.wire import READINGS, LinkClosed, LinkTimeout

        self._next_id += 1
        try:
            self._peer.send(READINGS, self._next_id)
            reply = self._peer.receive(time.monotonic() + self.settings.request_timeout_s)
        except (LinkClosed, LinkTimeout, OSError) as exc:
            raise EdgenasError(f"the cloud process did not send its reference readings ({exc})") from None
        if reply.kind != READINGS:
            raise EdgenasError("the cloud process answered the request for its readings with something else")
        rows = np.zeros((0, 3)) if reply.array is None else np.asarray(reply.array, dtype=float).reshape(-1, 3)
        return {int(n): (float(wall), float(cpu)) for n, wall, cpu in rows}

    def request(self, array: np.ndarray | None, kind: int | None = None) -> tuple[Any, int]:
        """Send one message (an activation, an input, token ids) and wait for the answer:
        ``(reply, bytes sent)``."""
        n, sent = self.send(array, kind)
        return self.receive(n), sent

    def send(self, array: np.ndarray | None, kind: int | None = None) -> tuple[int, int]:
        """Send one message without waiting: ``(its id, bytes sent)``; :meth:`receive` its answers."""
        from nas.split.wire import REQUEST

        self._next_id += 1
        n = self._next_id
        try:
            sent = self._peer.send(REQUEST if kind is None else kind, n, array, precision=self.precision)
        except OSError:
            raise EdgenasError(f"the cloud process stopped mid-request (request {n}: connection closed); "
                               "check its device and run again") from None
        return n, sent

    def receive(self, n: int) -> Any:
        """The next answer to request ``n`` (one line if the process died or stopped answering)."""
        from nas.split.wire import ERROR, REPLY, LinkClosed, LinkTimeout

        try:
            reply = self._peer.receive(time.monotonic() + self.settings.request_timeout_s)
        except (LinkClosed, OSError):
            raise EdgenasError(f"the cloud process stopped mid-request (request {n}: connection closed); "
                               "check its device and run again") from None
        except LinkTimeout:
            raise EdgenasError(f"the cloud process did not answer request {n} within "
                               f"{self.settings.request_timeout_s:g} s; it was stopped") from None
        if reply.kind == ERROR:
            raise EdgenasError(f"the cloud process could not serve request {n} ({self._proc.problem() if self._proc else ''})")
        if reply.kind != REPLY or reply.id != n:
            raise EdgenasError(f"the cloud process answered request {n} out of order")
        return reply

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._peer is not None:
                _goodbye(self._peer)
        finally:
            if self._proc is not None:
                self._proc.stop()
            if self._tmp is not None:
                self._tmp.cleanup()


class CloudLink(WorkerLink):
    """The cloud part of a split, served by a second process and reached through the
    emulated link.

    Example::

        with CloudLink(space, arch, module, 0, cloud_profile, link, RunSettings()) as cloud:
            cloud.connect()                      # waits until its part is compiled
            reply, sent = cloud.request(image)   # reply.array: the cloud's output
    """

    def __init__(self, space: Any, arch: Any, module: torch.nn.Module, position: int, profile: Any, link: Link,
                 settings: RunSettings = RunSettings(), precision: str = "fp32") -> None:
        super().__init__(link, settings, precision)
        self.args = (space, arch, module, position, profile)

    def spec(self, tmp: Path) -> tuple[dict[str, Any], str]:
        from latency_predictors.tvm_profiler import target_threads

        space, arch, module, position, profile = self.args
        weights = save_weights(module, tmp / "weights.safetensors")
        threads = str(target_threads(profile.target)) if isinstance(profile.target, dict) else "1"
        spec = worker_spec(space, arch, weights, position, profile, self.link, self.settings)
        spec["reference"] = True  # time the profile's reference beside each request (drift correction)
        return spec, threads


def save_weights(module: torch.nn.Module, path: Path) -> Path:
    """``module``'s weights as safetensors (what a worker loads; never a pickle)."""
    from safetensors.torch import save_file

    # clones: tied weights (a language model's embedding and head) are saved once per name
    save_file({k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}, str(path))
    return path


def worker_spec(space: Any, arch: Any, weights: Path, position: int, profile: Any, link: Link,
                settings: RunSettings) -> dict[str, Any]:
    """What the cloud process needs to rebuild and serve its part (JSON)."""
    return {"space": space.describe(), "arch": space.arch_to_json(arch), "weights": str(weights),
            "position": position, "profile": profile.to_json(), "link": link.to_json(), "port": settings.port,
            "start_timeout_s": settings.start_timeout_s, "idle_timeout_s": settings.request_timeout_s + 30.0}


class CloudProcess:
    """The cloud process, its stdout lines (read by a thread, so no line is ever stuck in a
    buffer) and its stderr (a file: a chatty process never blocks on a full pipe)."""

    def __init__(self, args: list[str], env: dict[str, str], stderr_path: Path) -> None:
        import queue
        import threading

        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put("")  # end of output

    def line(self, deadline: float) -> str:
        """The next stdout line ('' once it exited, or when the deadline passed)."""
        import queue

        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return ""

    def problem(self) -> str:
        """Why it stopped: its exit code and last stderr line (or 'no answer in time')."""
        if self.proc.poll() is None:
            return "no answer in time"
        self._stderr.flush()
        lines = [ln for ln in self._stderr_path.read_text(errors="replace").splitlines() if ln.strip()]
        return f"exit code {self.proc.returncode}: {lines[-1][:200]}" if lines else f"exit code {self.proc.returncode}"

    def stop(self) -> None:
        """It leaves by itself after BYE; else SIGTERM, then SIGKILL (by its pid)."""
        for step in ("wait", "terminate", "kill"):
            if step != "wait" and self.proc.poll() is None:
                getattr(self.proc, step)()
            try:
                self.proc.wait(timeout=5.0)
                break
            except subprocess.TimeoutExpired:
                continue
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def launch_worker(tmp: Path, spec: dict[str, Any], threads: str, settings: RunSettings) -> tuple[CloudProcess, int]:
    """Start ``python -m nas.split.worker`` on ``spec`` (written under ``tmp``) with ``threads``
    threads; returns the process once it listens, and its port."""
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, WORKER_MARK: str(os.getpid()), "OMP_NUM_THREADS": threads, "TVM_NUM_THREADS": threads}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = CloudProcess([sys.executable, "-m", "nas.split.worker", str(spec_path)], env, tmp / "cloud.stderr")
    try:
        line = proc.line(time.monotonic() + 120.0)
        if line == "ERROR port-in-use":
            raise EdgenasError(f"--port {settings.port}: 127.0.0.1:{settings.port} is already in use; pass another "
                               "--port, or --port 0 for a free one")
        if not line.startswith("LISTENING "):
            raise EdgenasError(f"the cloud process did not start ({line or proc.problem()})")
        return proc, int(line.split()[1])
    except BaseException:
        proc.stop()
        raise


def _connect(proc: CloudProcess, port: int, link: Link, settings: RunSettings) -> tuple[Any, str]:
    from nas.split.wire import HELLO, READY, LinkClosed, LinkedSocket, LinkTimeout

    deadline = time.monotonic() + settings.start_timeout_s
    how = proc.line(deadline)
    if not how.startswith("COMPILED "):
        raise EdgenasError(f"the cloud process failed while compiling its part ({how or proc.problem()})")
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    except OSError as exc:
        raise EdgenasError(f"cannot connect to the cloud process on 127.0.0.1:{port} ({exc.strerror or exc})") from None
    peer = LinkedSocket(sock, link)
    try:
        peer.send(HELLO, 0)
        reply = peer.receive(deadline)
    except (LinkClosed, LinkTimeout, OSError) as exc:
        peer.close()
        raise EdgenasError(f"the cloud process did not answer its first message ({exc})") from None
    if reply.kind != READY:
        peer.close()
        raise EdgenasError("the cloud process answered its first message with something else")
    return peer, how.removeprefix("COMPILED ")


def _time_edge_only(edge: Any, inputs: np.ndarray, settings: RunSettings, result: RunResult,
                    reference: DriftReference | None, edge_side: SideCorrection, cloud_side: SideCorrection) -> None:
    for i in range(settings.warmup + settings.requests):
        x = inputs[i % len(inputs)][None]
        _, compute = paired_compute(edge.run, x, reference, i)
        if i >= settings.warmup:
            result.requests.append(_record(compute.wall_ms, compute, Compute(0.0, 0.0), 0.0, edge_side, cloud_side))


def _goodbye(peer: Any) -> None:
    from nas.split.wire import BYE

    try:
        peer.send(BYE, 0)
    except OSError:
        pass
    peer.close()


__all__ = ["WORKER_MARK", "CloudLink", "CloudProcess", "RunResult", "RunSettings", "WorkerLink", "launch_worker", "run_split",
           "run_split_links", "save_weights", "worker_spec"]
