"""The torch-eager baseline: the same modules, timed without TVM (never instead of it).

Useful beside TVM to see what compilation buys on a device, and where TVM is not
installed. Threads are pinned (``torch.set_num_threads``) for the duration of a
measurement and restored afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from latency_predictors.errors import InputError
from latency_predictors.timing import (
    ExampleInput,
    TimerFn,
    Timing,
    TimingConfig,
    example_tensor,
    time_calls,
)


@dataclass
class EagerProfiler:
    """Times ``module(x)`` under ``torch.inference_mode`` on this machine's CPU."""

    threads: int = 1
    timing: TimingConfig = TimingConfig()
    backend: str = "eager"

    def __post_init__(self) -> None:
        if self.timing.clock == "cpu" and self.threads != 1:
            raise InputError("--clock cpu needs one thread (\"num-cores\": 1)")

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "target": {"kind": "torch-cpu", "num-cores": self.threads},
            "torch_version": torch.__version__,
            "threads": self.threads,
            "timing": self.timing.to_json(),
            "session": {"kind": "local"},
        }

    def measure(self, module: nn.Module, input_shape: ExampleInput) -> Timing:
        return self.prepare(module, input_shape)()

    def prepare(self, module: nn.Module, input_shape: ExampleInput) -> TimerFn:
        """Nothing to compile: the returned function times ``module`` each time it is called."""
        return lambda cfg=None: self._time(module, input_shape, cfg or self.timing)

    def prepare_many(self, items: list[tuple[nn.Module, ExampleInput]]) -> list[TimerFn]:
        return [self.prepare(module, shape) for module, shape in items]

    def _time(self, module: nn.Module, input_shape: ExampleInput, cfg: TimingConfig) -> Timing:
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        clock = time.thread_time if cfg.clock == "cpu" else time.perf_counter
        try:
            x = example_tensor(input_shape)
            module = module.eval()
            with torch.inference_mode():
                return time_calls(lambda: module(x), cfg, clock)
        finally:
            torch.set_num_threads(before)
