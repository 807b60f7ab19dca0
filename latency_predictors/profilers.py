"""One way to build the profiler that reaches a device: here, over RPC, or through a tracker.

Profiling a device and measuring a fine-tuned model on it later must compile and time the
same way (target, schedule, timing, cross compiler, how the device is reached), or the
measured figure is not comparable with the prediction. :class:`Reach` says how a device
is reached; it is stored in the profile (``DeviceProfile.reached``), and
:func:`profiler_for_profile` rebuilds exactly that profiler from a profile.

Example::

    profiler = make_profiler({"kind": "llvm", "num-cores": 1}, reach=Reach.rpc("10.0.0.3:9091"))
    timing = profiler.measure(model, (3, 32, 32))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from latency_predictors.errors import InputError
from latency_predictors.timing import CLOCK_CHOICES, TimingConfig
from latency_predictors.tuning import Schedule

BACKENDS = ("tvm", "eager")


@dataclass(frozen=True)
class Reach:
    """How a device is reached: ``local`` (this machine), ``rpc`` (a server at ``address``)
    or ``tracker`` (``tracker`` address and the device's ``key``). ``cross_compiler`` links
    the compiled library for the device (e.g. ``aarch64-linux-gnu-g++``); ``None`` uses
    this machine's compiler (same architecture)."""

    kind: str = "local"
    address: str | None = None
    tracker: str | None = None
    key: str | None = None
    cross_compiler: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("local", "rpc", "tracker", "import"):
            raise InputError(f"reach kind {self.kind!r} is unknown; use local, rpc or tracker")
        if self.kind == "rpc" and not self.address:
            raise InputError("an RPC device needs --rpc HOST:PORT")
        if self.kind == "tracker" and not (self.tracker and self.key):
            raise InputError("a tracker device needs --rpc-tracker HOST:PORT and --rpc-key KEY")
        if self.kind == "local" and (self.address or self.tracker or self.key):
            raise InputError("--rpc-key needs --rpc-tracker HOST:PORT (a direct --rpc server has no key)")

    @classmethod
    def from_flags(cls, rpc: str | None = None, tracker: str | None = None, key: str | None = None,
                   cross_compiler: str | None = None) -> Reach:
        """From ``--rpc``, ``--rpc-tracker``, ``--rpc-key`` and ``--cross-compiler``."""
        if rpc and tracker:
            raise InputError("give either --rpc HOST:PORT or --rpc-tracker HOST:PORT with --rpc-key KEY, not both")
        if tracker and not key:
            raise InputError("--rpc-tracker needs --rpc-key KEY (the key the device's rpc_server registered)")
        if key and not tracker:
            raise InputError("--rpc-key needs --rpc-tracker HOST:PORT (a direct --rpc server has no key)")
        if rpc:
            return cls("rpc", address=rpc, cross_compiler=cross_compiler)
        if tracker:
            return cls("tracker", tracker=tracker, key=key, cross_compiler=cross_compiler)
        if cross_compiler:
            raise InputError("--cross-compiler is for devices reached over RPC: add --rpc or --rpc-tracker")
        return cls()

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Reach:
        """From a profile's ``reached`` (profiles written before ``cross_compiler`` was stored
        read as having none)."""
        data = dict(data or {"kind": "local"})
        return cls(**{k: data.get(k) for k in ("address", "tracker", "key", "cross_compiler")},
                   kind=data.get("kind", "local"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for name in ("address", "tracker", "key", "cross_compiler"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out

    def override(self, rpc: str | None = None, tracker: str | None = None, key: str | None = None) -> Reach:
        """The same device at another address (it moved, or a tunnel forwards it)."""
        if not (rpc or tracker or key):
            return self
        if key and not tracker and self.kind == "tracker":
            tracker = self.tracker
        return Reach.from_flags(rpc, tracker, key, self.cross_compiler)

    @property
    def remote(self) -> bool:
        return self.kind in ("rpc", "tracker")


def resolve_clock(clock: str, target: dict[str, Any], reach: Reach = Reach(), backend: str = "tvm") -> str:
    """``clock`` with ``auto`` resolved: ``cpu`` (the model thread's CPU time) for a local,
    single-threaded CPU target, ``wall`` otherwise (RPC devices, GPUs, several threads).

    On the project's shared 2-core machine, drift-corrected thread CPU time of one network
    repeated over four minutes had a CV of 3 %, drift-corrected elapsed time 15 % (other
    processes hold the core for whole time slices); a dedicated device has no such
    neighbours, and a remote one cannot be asked for its thread's CPU time.
    """
    if clock not in CLOCK_CHOICES:
        raise InputError(f"clock {clock!r} is unknown; use one of {', '.join(CLOCK_CHOICES)}")
    if clock != "auto":
        return clock
    local_cpu = not reach.remote and target.get("kind") not in ("cuda", "rocm", "vulkan", "metal", "opencl")
    return "cpu" if local_cpu and int(target.get("num-cores", 1)) == 1 and backend in BACKENDS else "wall"


def make_profiler(
    target: dict[str, Any],
    *,
    backend: str = "tvm",
    reach: Reach = Reach(),
    timing: TimingConfig = TimingConfig(),
    schedule: Schedule = Schedule(),
) -> Any:
    """The profiler for ``target`` reached as ``reach``: TVM (local or RPC) or torch eager.

    Raises :class:`InputError` for combinations that cannot work and
    :class:`~latency_predictors.errors.ProfilingError` for a device that cannot be reached.
    """
    from latency_predictors.tvm_profiler import TVMProfiler, parse_target, target_threads

    if backend not in BACKENDS:
        raise InputError(f"backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
    if backend == "eager" and isinstance(target, dict) and target.get("kind") == "torch-cpu":
        pass  # what an eager profile records as its target: not a TVM target
    else:
        target = parse_target(target)
    if backend == "eager":
        if reach.remote or schedule.kind != "untuned":
            raise InputError("--backend eager times this machine's CPU only: drop --rpc/--rpc-tracker/--tune-trials")
        from latency_predictors.eager_profiler import EagerProfiler

        return EagerProfiler(threads=target_threads(target), timing=timing)
    if reach.remote:
        from latency_predictors.rpc import connect

        session = connect(target, rpc=reach.address, tracker=reach.tracker, key=reach.key,
                          cross_compiler=reach.cross_compiler)
        return TVMProfiler(target, session=session, timing=timing, schedule=schedule)
    from latency_predictors.energy import detect_meter

    return TVMProfiler(target, timing=timing, schedule=schedule, meter=detect_meter(target))


def profiler_for_profile(profile: Any, reach: Reach | None = None) -> Any:
    """The profiler that measures like ``profile`` was measured: same backend, target, schedule,
    timing, the device reached as recorded (``reach`` overrides the address), and, when the
    profile was drift corrected, paired with the same reference network and baseline (and
    timed in the machine's fast state with the profile's threshold when it was state gated)."""
    if profile.backend not in BACKENDS:
        raise InputError(
            f"device {profile.name!r} was {'imported' if profile.backend == 'import' else 'profiled with backend ' + repr(profile.backend)}: "
            "there is nothing here to measure it with; measure on the device and import the result"
        )
    timing = TimingConfig(**profile.timing) if profile.timing else TimingConfig()
    schedule = Schedule(**{k: v for k, v in profile.schedule.items() if k in ("kind", "trials", "database")})
    inner = make_profiler(profile.target, backend=profile.backend, reach=reach or Reach.from_json(profile.reached),
                          timing=timing, schedule=schedule)
    from latency_predictors.reference import Reference, ReferencedProfiler

    reference = Reference.from_json(getattr(profile, "reference", None))
    if reference is None:
        return inner
    from latency_predictors.cost_metrics import default_metric

    space = profile.build_space()
    arch = space.arch_from_json(reference.item)
    metric = default_metric(space)
    gate = None
    if reference.fast_ms is not None and timing.state_wait_s > 0:
        from latency_predictors.machine_state import StateGate

        gate = StateGate(state_wait_s=timing.state_wait_s, threshold_ms=reference.fast_ms)
    return ReferencedProfiler(inner, metric.build(space, arch), metric.timing_input(space, arch), reference.baseline_ms,
                              reference.item, reference.exponent, gate)


__all__ = ["BACKENDS", "Reach", "make_profiler", "profiler_for_profile", "resolve_clock"]
