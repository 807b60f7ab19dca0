"""Compile modules with Apache TVM and time them with ``time_evaluator`` (local or over RPC).

The path is the one TVM documents for PyTorch models: ``torch.export`` →
``tvm.relax.frontend.torch.from_exported_program`` → ``tvm.compile`` for a target given
as a JSON dict (``{"kind": "llvm", "num-cores": 1}``). The compiled library runs on a
:class:`Session`: this machine (:class:`LocalSession`) or a remote device reached over
RPC (:mod:`latency_predictors.rpc`), where it is uploaded and timed in place. On this
machine, untuned, every distinct kernel is compiled once per profiler
(:class:`~latency_predictors.kernel_cache.KernelCache`): a whole network whose blocks
were timed before compiles in a fraction of the time.

TVM is imported inside the functions, so the package imports without it.

Example::

    profiler = TVMProfiler({"kind": "llvm", "num-cores": 1})
    timing = profiler.measure(space.build_block(spec), spec.in_shape)
    print(timing.median_ms, timing.spread_ms)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from latency_predictors.energy import NOT_MEASURED, EnergyMeter, measure_energy
from latency_predictors.errors import InputError, ProfilingError
from latency_predictors.kernel_cache import CompileStats, KernelCache
from latency_predictors.timing import (
    ExampleInput,
    TimerFn,
    Timing,
    TimingConfig,
    example_tensor,
    more_repeats,
    time_calls,
)
from latency_predictors.tuning import Schedule
from latency_predictors.tvm_install import require_tvm

T = TypeVar("T")
_TARGET_EXAMPLE = '\'{"kind": "llvm", "num-cores": 1}\''


def tvm_version() -> str:
    try:
        import tvm
    except ImportError:
        return "not installed"
    return str(tvm.__version__)


def parse_target(target: str | dict[str, Any]) -> dict[str, Any]:
    """A TVM target as a JSON dict, checked by TVM itself.

    ``target`` is the dict or its JSON text. Raises ``ValueError`` with one line naming
    the problem and an example of a valid target.
    """
    if isinstance(target, str):
        try:
            target = json.loads(target)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"target is not valid JSON ({exc.msg} at column {exc.colno}); "
                f"pass a JSON object such as {_TARGET_EXAMPLE}"
            ) from None
    if not isinstance(target, dict) or not isinstance(target.get("kind"), str):
        raise InputError(f"target must be a JSON object with a \"kind\", such as {_TARGET_EXAMPLE}")
    tvm = require_tvm()
    try:
        tvm.target.Target(target)
    except Exception as exc:  # TVM raises its own error types for unknown kinds and keys
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"TVM rejects target {json.dumps(target)}: {first}") from None
    return dict(target)


def target_threads(target: dict[str, Any]) -> int:
    """Threads the timed code may use: the target's ``num-cores``, else 1 (pinned, comparable)."""
    return int(target.get("num-cores", 1))


def to_relax(module: nn.Module, input_shape: ExampleInput, stats: CompileStats | None = None,
             shapes: list[ExampleInput] | None = None) -> Any:
    """``module`` (batch 1: a float32 input of shape ``input_shape`` or the example tensor
    ``input_shape``, e.g. int64 token ids; or one input per entry of ``shapes``) as a Relax
    ``IRModule`` (``stats``: where the seconds went, ``export`` and ``import``)."""
    from tvm.relax.frontend.torch import from_exported_program

    stats = stats if stats is not None else CompileStats()
    t0 = time.perf_counter()
    examples = tuple(example_tensor(shape) for shape in (shapes or [input_shape]))
    with torch.no_grad():
        exported = torch.export.export(module.eval(), examples)
    t1 = time.perf_counter()
    mod = from_exported_program(exported, keep_params_as_input=False)
    stats.add("export", t1 - t0)
    stats.add("import", time.perf_counter() - t1)  # mostly torch's decompositions
    return mod


class _Side(nn.Module):
    """Modules side by side: input ``i`` through module ``i`` (one export for all of them)."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(modules)

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(m(x) for m, x in zip(self.parts, xs))


def to_relax_many(modules: list[nn.Module], input_shapes: list[ExampleInput],
                  stats: CompileStats | None = None) -> list[Any]:
    """Each of ``modules`` as its own Relax ``IRModule``, exported and imported in one go.

    ``torch.export`` and above all torch's decompositions cost about a second per call
    whatever the module's size (on the project's 2-core machine, importing 8 blocks one
    by one took 25 s, side by side 12.8 s): the modules are exported side by side in one
    module, imported once, and each output's computation is cut out into a module of its
    own, which compiles to the same kernels as the module imported alone (checked kernel
    by kernel by structural hash, and by the outputs, in the tests).
    """
    if len(modules) == 1:
        return [to_relax(modules[0], input_shapes[0], stats)]
    side = to_relax(_Side([m.eval() for m in modules]), input_shapes[0], stats, shapes=input_shapes)
    return [_cut(side, i) for i in range(len(modules))]


def _cut(mod: Any, i: int) -> Any:
    """The computation of output ``i`` of ``mod``'s ``main`` (from input ``i``) as a module."""
    from tvm import relax

    main = mod["main"]
    (block,) = main.body.blocks
    bindings = {b.var: b for b in block.bindings}
    target = bindings[main.body.body].value.fields[i]
    needed, stack = set(), [target]
    while stack:
        var = stack.pop()
        if var in bindings and var not in needed:
            needed.add(var)
            stack.extend(relax.analysis.free_vars(bindings[var].value))
    out = relax.Var("gv", target.ty)
    body = relax.SeqExpr([relax.DataflowBlock([b for b in block.bindings if b.var in needed]
                                              + [relax.VarBinding(out, target)])], out)
    func = relax.BlockBuilder().normalize(relax.Function([main.params[i]], body, target.ty, attrs=main.attrs))
    return require_tvm().IRModule({"main": func}, attrs=mod.attrs)


def compile_relax(mod: Any, target: dict[str, Any], schedule: Schedule | None = None) -> Any:
    """Compile ``mod`` for ``target``: TVM's default pipeline, or MetaSchedule-tuned."""
    tvm = require_tvm()
    tvm_target = tvm.target.Target(target)
    if schedule is not None and schedule.kind == "metaschedule":
        from latency_predictors.tuning import compile_tuned

        return compile_tuned(mod, tvm_target, schedule)
    return tvm.compile(mod, target=tvm_target)


class Session(Protocol):
    """Where compiled code runs: loads an executable and returns ``(vm, device)``."""

    def describe(self) -> dict[str, Any]: ...

    def load(self, executable: Any) -> tuple[Any, Any]: ...


class LocalSession:
    """This machine: the CPU for ``llvm`` targets, the first GPU for ``cuda`` targets."""

    def __init__(self, target: dict[str, Any]) -> None:
        self.target = target
        # the cores this process may use (``taskset``, a container's cpuset): TVM's own
        # choice ("big" cores, by frequency) ignores them and would pin every profiling
        # process on the machine to core 0
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None

    def describe(self) -> dict[str, Any]:
        return {"kind": "local"}

    def device(self) -> Any:
        tvm = require_tvm()
        kind = self.target["kind"]
        dev = tvm.cuda(0) if kind == "cuda" else tvm.cpu(0)
        if not dev.exist:
            raise ProfilingError(f"no {kind} device on this machine; use a target this machine has")
        return dev

    def load(self, executable: Any) -> tuple[Any, Any]:
        """Load ``executable``; its runs are timed inside :meth:`pinned`."""
        from tvm import relax

        dev = self.device()
        return relax.VirtualMachine(executable, dev), dev

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """TVM's threads (the calling thread among them) bound to this process's first cores
        while timing, and the calling thread's own cores restored after: TVM would otherwise
        leave it on one core, and a fine-tuning or search that follows a profile in the same
        process would run on that core alone."""
        saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        if self.target["kind"] != "cuda":
            _pin_threads(require_tvm().get_global_func, target_threads(self.target), self.cpus)
        try:
            yield
        finally:
            if saved is not None:
                os.sched_setaffinity(0, saved)


def _pin_threads(get_function: Any, threads: int, cpus: Sequence[int] | None = None) -> None:
    """Fix the TVM runtime's thread pool size and bind its threads (``runtime.config_threadpool``).

    With ``cpus`` (this process's allowed cores, local sessions) the threads are bound one
    per core to the first ``threads`` of them, so ``taskset`` and cpusets are honoured; without
    (a remote device) TVM binds them to the device's big cores.
    """
    os.environ.setdefault("TVM_NUM_THREADS", str(threads))
    config = get_function("runtime.config_threadpool")
    if cpus and len(cpus) >= threads:
        config(-2, threads, [str(c) for c in list(cpus)[:threads]])  # kSpecifyOneCorePerThread
    else:
        config(1, threads)  # kBig


@dataclass
class TVMProfiler:
    """Times modules compiled by TVM for ``target`` on ``session`` (local by default).

    ``schedule`` chooses the default pipeline (``None`` or untuned) or MetaSchedule
    tuning; it is recorded with every measurement. ``reuse_kernels`` (local, untuned
    only) compiles each distinct kernel once (:class:`KernelCache`); ``stats`` says where
    compile time went.
    """

    target: dict[str, Any]
    session: Session | None = None
    timing: TimingConfig = TimingConfig()
    schedule: Schedule = Schedule()
    meter: EnergyMeter | None = None
    backend: str = "tvm"
    reuse_kernels: bool = True

    def __post_init__(self) -> None:
        self.target = parse_target(self.target)
        if self.session is None:
            self.session = LocalSession(self.target)
        self.stats = CompileStats()
        local_untuned = isinstance(self.session, LocalSession) and self.schedule.kind != "metaschedule"
        self.kernels = KernelCache(self.target, self.stats) if self.reuse_kernels and local_untuned else None
        if self.timing.clock == "cpu" and (
            not isinstance(self.session, LocalSession) or self.target["kind"] == "cuda" or target_threads(self.target) != 1
        ):
            raise InputError(
                "--clock cpu needs a local CPU target with \"num-cores\": 1; use --clock wall for "
                "RPC devices, GPUs and multi-threaded targets"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "target": self.target,
            "tvm_version": tvm_version(),
            "schedule": self.schedule.to_json(),
            "threads": target_threads(self.target),
            "timing": self.timing.to_json(),
            "session": self.session.describe() if self.session else {"kind": "local"},
            "energy": self.meter.name if self.meter else NOT_MEASURED,
        }

    def measure(self, module: nn.Module, input_shape: ExampleInput) -> Timing:
        return self.prepare(module, input_shape)()

    def prepare(self, module: nn.Module, input_shape: ExampleInput) -> TimerFn:
        """Compile and load ``module`` once; the returned function times it (again and
        again, for the noise floor; ``timer(cfg)`` with other settings, no energy)."""
        return self._prepare_relax(to_relax(module, input_shape, self.stats), input_shape)

    def prepare_many(self, items: list[tuple[nn.Module, ExampleInput]]) -> list[TimerFn]:
        """:meth:`prepare` for several modules, exported and imported together
        (:func:`to_relax_many`; each is still compiled and timed on its own)."""
        mods = to_relax_many([m for m, _ in items], [shape for _, shape in items], self.stats)
        return [self._prepare_relax(mod, shape) for mod, (_, shape) in zip(mods, items)]

    def _prepare_relax(self, mod: Any, input_shape: ExampleInput) -> TimerFn:
        t0 = time.perf_counter()
        executable = None
        if self.kernels is not None:
            try:
                executable = self.kernels.build(mod)
            except (AttributeError, ValueError):  # a TVM without the internals it uses, or BYOC
                self.kernels = None
        if executable is None:
            executable = compile_relax(mod, self.target, self.schedule)
            self.stats.add("compile", time.perf_counter() - t0)
            self.stats.modules += 1
        assert self.session is not None
        t0 = time.perf_counter()
        vm, dev = self._guard(lambda: self.session.load(executable))  # type: ignore[union-attr]
        self.stats.add("load", time.perf_counter() - t0)

        def timer(cfg: TimingConfig | None = None) -> Timing:
            with self._pinned():
                return timed(cfg)

        def timed(cfg: TimingConfig | None) -> Timing:
            t0 = time.perf_counter()
            timing = self._guard(lambda: time_vm(vm, dev, input_shape, cfg or self.timing))
            self.stats.add("time", time.perf_counter() - t0)
            if self.meter is None or cfg is not None:
                return timing
            data = _input(dev, input_shape)

            def run() -> None:
                vm["main"](data)
                dev.sync()

            mj = self._guard(lambda: measure_energy(self.meter, run))  # type: ignore[arg-type]
            return replace(timing, energy_mj=mj if mj > 0 else None, energy_method=self.meter.name)

        return timer

    def _pinned(self) -> AbstractContextManager[None]:
        """Local sessions bind TVM's threads while timing (remote ones did in ``load``)."""
        return self.session.pinned() if isinstance(self.session, LocalSession) else nullcontext()

    @staticmethod
    def _guard(call: Callable[[], T]) -> T:
        try:
            return call()
        except ProfilingError:
            raise
        except Exception as exc:  # a remote device that drops raises TVMError / OSError
            raise ProfilingError(
                f"the device stopped answering ({_first_line(exc)}); measurements so far are "
                "kept: check the device and re-run the same command to resume"
            ) from None


def time_vm(vm: Any, dev: Any, input_shape: ExampleInput, cfg: TimingConfig) -> Timing:
    """Warm up, then time ``vm["main"]`` (thread CPU time, or ``time_evaluator``'s elapsed
    time in batches of repeats) until the median is stable."""
    data = _input(dev, input_shape)
    if cfg.clock == "cpu":  # this thread's CPU time (local, single-threaded targets only)
        main = vm["main"]
        return time_calls(lambda: main(data), cfg, time.thread_time)
    for _ in range(cfg.warmup):
        vm["main"](data)
    dev.sync()
    results: list[float] = []
    while n := more_repeats(len(results), results, cfg):
        evaluator = vm.time_evaluator("main", dev, number=cfg.number, repeat=n, min_repeat_ms=cfg.min_repeat_ms)
        # each result is the mean of one repeat's runs (at least `number`, more if
        # min_repeat_ms asked for it)
        results += [float(r) * 1e3 for r in evaluator(data).results]
    return Timing(results_ms=tuple(results), number=cfg.number)


def _input(dev: Any, input_shape: ExampleInput) -> Any:
    """The timed input on ``dev``: an example tensor as it is, a shape as standard-normal float32."""
    tvm = require_tvm()
    if isinstance(input_shape, torch.Tensor):
        return tvm.runtime.tensor(input_shape.detach().cpu().numpy(), dev)
    rng = np.random.default_rng(0)
    return tvm.runtime.tensor(rng.standard_normal((1, *input_shape), dtype=np.float32), dev)


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1][:200] if lines else type(exc).__name__
