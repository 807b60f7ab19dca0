"""The cloud process of a split run: ``python -m nas.split.worker SPEC.json``.

It binds its port on 127.0.0.1 first (so a port in use is reported at once: ``ERROR
port-in-use``), says ``LISTENING PORT``, builds and compiles its part of the network as
the cloud device was profiled, says ``COMPILED HOW``, then serves one edge connection:
``HELLO`` is answered ``READY``, ``RELINK`` (a new rate and round trip) too, each ``REQUEST`` (an activation) with a ``REPLY`` (the
result, float32, stamped with the compute time), until ``BYE``, a closed connection, or
no message for ``idle_timeout_s``. With ``"reference": true`` in the spec and a reference
in the cloud profile, one run of the reference network is timed beside each request's
compute, before the reply leaves (:mod:`nas.split.drift`), and ``READINGS`` is answered
with the readings since the last ``READINGS`` (rows of request id, wall ms, CPU ms). Every wait has a deadline, so it never outlives its
edge for long. Started and stopped by :func:`nas.split.run.run_split`. A spec with
``"role": "verifier"`` serves the verifier of speculative decoding instead
(:func:`nas.split.speculative_run.serve_verifier`).

``EDGENAS_SPLIT_EXIT_AT=N`` makes it exit without answering when request ``N`` arrives
(the tests use it to check that the edge reports a cloud that dies mid-request).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

EXIT_AT_VAR = "EDGENAS_SPLIT_EXIT_AT"


def serve(spec: dict[str, Any]) -> int:
    """Run the cloud side described by ``spec`` (see :func:`nas.split.run.worker_spec`)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", int(spec["port"])))
    except OSError as exc:
        listener.close()
        print("ERROR port-in-use" if exc.errno == errno.EADDRINUSE else f"ERROR bind {exc.strerror}", flush=True)
        return 2
    listener.listen(1)
    print(f"LISTENING {listener.getsockname()[1]}", flush=True)
    try:
        if spec.get("role") == "verifier":  # speculative decoding (nas.split.speculative_run)
            from nas.split.speculative_run import serve_verifier

            return serve_verifier(listener, spec, int(os.environ.get(EXIT_AT_VAR, "0") or 0))
        return _serve(listener, spec)
    finally:
        listener.close()


def _serve(listener: socket.socket, spec: dict[str, Any]) -> int:
    import numpy as np
    from safetensors.torch import load_file

    from latency_predictors.device_profile import DeviceProfile
    from nas.split import wire
    from nas.split.drift import DriftReference, paired_compute
    from nas.split.link import Link
    from nas.split.parts import compile_part, split_network
    from search_spaces import space_from_description

    space = space_from_description(spec["space"])
    arch = space.arch_from_json(spec["arch"])
    module = space.build_static(arch)
    module.load_state_dict(load_file(spec["weights"]))
    _, cloud = split_network(space, arch, module.eval(), int(spec["position"]))
    profile = DeviceProfile.from_json(spec["profile"])
    compiled = compile_part(cloud, profile)
    reference = DriftReference.for_profile(profile) if spec.get("reference") else None
    readings: list[tuple[int, float, float]] = []
    print(f"COMPILED {compiled.how}", flush=True)
    exit_at = int(os.environ.get(EXIT_AT_VAR, "0") or 0)
    peer = wire.accept_peer(listener, spec)
    if peer is None:
        print("ERROR no edge connected", flush=True)
        return 1
    idle = float(spec["idle_timeout_s"])
    served = 0
    try:
        while True:
            msg = peer.receive(time.monotonic() + idle)
            if msg.kind == wire.HELLO:
                peer.send(wire.READY, msg.id)
            elif msg.kind == wire.REQUEST:
                served += 1
                if exit_at and served == exit_at:
                    os._exit(3)  # dies mid-request, as a crashed cloud would
                out, compute = paired_compute(compiled.run, msg.array, reference, served)
                if compute.ref_wall_ms is not None:
                    readings.append((msg.id, compute.ref_wall_ms, float(compute.ref_cpu_ms)))
                peer.send(wire.REPLY, msg.id, np.asarray(out, dtype=np.float32), wall_ms=compute.wall_ms,
                          cpu_ms=compute.cpu_ms)
            elif msg.kind == wire.READINGS:
                rows = np.asarray(readings, dtype=np.float32).reshape(-1, 3)
                readings.clear()
                peer.send(wire.READINGS, msg.id, rows if len(rows) else None)
            elif msg.kind == wire.RELINK:  # the next messages cross another link (a sweep over links)
                rate, rtt = (float(v) for v in msg.array)
                peer.send(wire.READY, msg.id)
                peer.link = Link(rate, rtt)
            elif msg.kind == wire.BYE:
                return 0
    except (wire.LinkClosed, wire.LinkTimeout):
        return 0
    finally:
        peer.close()


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec", category=FutureWarning)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nas.split.worker SPEC.json", file=sys.stderr)
        return 2
    return serve(json.loads(Path(args[0]).read_text()))


if __name__ == "__main__":
    sys.exit(main())
