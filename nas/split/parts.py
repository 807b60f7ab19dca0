"""The two parts of a split network, each compiled the way its device was profiled.

:func:`split_network` cuts a plain module (``build_static`` or an extracted sub-network)
at one of its space's cuts into the part before (edge) and after (cloud), sharing its
weights. :func:`compile_part` makes a part runnable as its device profile says: TVM (the
profile's target and schedule, through :mod:`latency_predictors.tvm_profiler`) for a
``tvm`` profile, torch eager with the profile's thread count for an ``eager`` one. A TVM
part whose input is integer ids (a language model's embedding) runs eager, and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import EdgenasError


@dataclass
class Part:
    """One side of a split: its module (``None`` when empty) and the shape of one input
    (without the batch dimension)."""

    module: nn.Module | None
    input_shape: tuple[int, ...]
    integer_input: bool = False


def split_network(space: Any, arch: Any, module: nn.Module, position: int) -> tuple[Part, Part]:
    """``module`` cut at ``space.cuts(arch)[position]``: the edge part (blocks before the cut)
    and the cloud part (the rest). Position 0 leaves the edge part empty (cloud only), the
    last position the cloud part (edge only)."""
    cuts = space.cuts(arch)
    if not 0 <= position < len(cuts):
        raise EdgenasError(f"split point {position} does not exist: this arch has points 0 (cloud only) to "
                           f"{len(cuts) - 1} (edge only)")
    try:
        segments = space.split_modules(module, arch)
    except TypeError as exc:
        raise EdgenasError(f"{exc}; `edgenas split` without --run plans it") from None
    if len(segments) != len(cuts) - 1:
        raise EdgenasError(f"space {space.name!r} gave {len(segments)} segments for {len(cuts)} cuts (a bug in the space)")
    cut = cuts[position]
    if 0 < position < len(cuts) - 1 and len(cut.shapes) != 1:
        raise EdgenasError(f"split point {position} ({cut.label}) sends {len(cut.shapes)} tensors; running a split "
                           "supports cuts that send one")
    first = cuts[0]
    edge = Part(nn.Sequential(*segments[:position]).eval() if position else None,
                tuple(first.shapes[0]), first.integer)
    cloud_shape = tuple(cut.shapes[0]) if cut.shapes else ()
    cloud = Part(nn.Sequential(*segments[position:]).eval() if position < len(cuts) - 1 else None,
                 cloud_shape, cut.integer)
    return edge, cloud


@dataclass
class CompiledPart:
    """A part ready to run on this machine: ``run(x) -> y`` on numpy arrays with a batch
    dimension; ``how`` says how it was compiled."""

    run: Callable[[np.ndarray], np.ndarray]
    how: str


def compile_part(part: Part, profile: Any) -> CompiledPart:
    """Compile ``part`` as ``profile`` (a :class:`~latency_predictors.device_profile.DeviceProfile`)
    was measured: TVM with its target and schedule, or torch eager with its threads."""
    from latency_predictors.tvm_profiler import target_threads

    if part.module is None:
        return CompiledPart(lambda x: x, "nothing to run")
    threads = target_threads(profile.target) if isinstance(profile.target, dict) else 1
    if profile.backend == "tvm":
        return _compile_tvm(part, profile)
    return _eager(part.module, threads, f"torch eager, {threads} thread(s)")


def _eager(module: nn.Module, threads: int, how: str) -> CompiledPart:
    module = module.eval()

    def run(x: np.ndarray) -> np.ndarray:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                return module(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        finally:
            torch.set_num_threads(before)

    return CompiledPart(run, how)


def _compile_tvm(part: Part, profile: Any) -> CompiledPart:
    from latency_predictors.tuning import Schedule
    from latency_predictors.tvm_profiler import LocalSession, compile_relax, require_tvm, to_relax

    tvm = require_tvm()
    schedule = Schedule(**{k: v for k, v in profile.schedule.items() if k in ("kind", "trials", "database")})
    # a part fed token ids is compiled for int64 ids (an embedding gathers with them)
    example = torch.zeros((1, *part.input_shape), dtype=torch.int64) if part.integer_input else part.input_shape
    dtype = np.int64 if part.integer_input else np.float32
    executable = compile_relax(to_relax(part.module, example), profile.target, schedule)
    session = LocalSession(profile.target)
    vm, dev = session.load(executable)
    main = vm["main"]

    def run(x: np.ndarray) -> np.ndarray:
        # bound as the device was timed, for this call only (~10 us): the edge part runs in
        # the caller's process, which must not stay bound to one core after
        with session.pinned():
            out = main(tvm.runtime.tensor(np.ascontiguousarray(x, dtype=dtype), dev))
        while not hasattr(out, "numpy"):  # a tuple of one output
            out = out[0]
        return out.numpy()

    how = f"TVM {profile.target} ({profile.schedule_label}), as {profile.name} was profiled"
    return CompiledPart(run, how)


__all__ = ["CompiledPart", "Part", "compile_part", "split_network"]
