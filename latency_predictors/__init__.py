"""What a device costs: TVM profilers, energy meters, measurement store, predictors, profiles.

Imports without TVM (TVM is imported inside the functions that compile and time), and
lazily: ``import latency_predictors`` is instant, each name below is imported from its
module on first use.

Example::

    from latency_predictors import DeviceProfile, MeasurementStore, fit_cost_model

    profile = DeviceProfile.load(Path("edgenas-workspace/profiles/laptop.json"))
    model = fit_cost_model(profile, MeasurementStore("edgenas-workspace/measurements.db"))
    model.predict(archs)["latency_ms"]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "BlockLatencyRegressor": "predictors",
    "BlockSumRegressor": "predictors",
    "CostModel": "device_profile",
    "DatabaseError": "errors",
    "DeviceProfile": "device_profile",
    "EagerProfiler": "eager_profiler",
    "InputError": "errors",
    "Measurement": "measurements",
    "MeasurementStore": "measurements",
    "PredictorsError": "errors",
    "ProfileBuilder": "profile_builder",
    "ProfileExistsError": "errors",
    "ProfilePlan": "profile_builder",
    "ProfilingError": "errors",
    "Reach": "profilers",
    "RegressorSelector": "predictors",
    "Schedule": "tuning",
    "TVMProfiler": "tvm_profiler",
    "Timing": "timing",
    "TimingConfig": "timing",
    "WholeNetworkRegressor": "predictors",
    "fit_cost_model": "device_profile",
    "make_profiler": "profilers",
    "open_engine": "database",
    "parse_target": "tvm_profiler",
    "profiler_for_profile": "profilers",
    "validate_device_name": "device_profile",
    "validation_figures": "metrics",
}

if TYPE_CHECKING:  # what static tools (type checkers, the API docs) see
    from latency_predictors.database import open_engine
    from latency_predictors.device_profile import (
        CostModel,
        DeviceProfile,
        fit_cost_model,
        validate_device_name,
    )
    from latency_predictors.eager_profiler import EagerProfiler
    from latency_predictors.errors import (
        DatabaseError,
        InputError,
        PredictorsError,
        ProfileExistsError,
        ProfilingError,
    )
    from latency_predictors.measurements import Measurement, MeasurementStore
    from latency_predictors.metrics import validation_figures
    from latency_predictors.predictors import (
        BlockLatencyRegressor,
        BlockSumRegressor,
        RegressorSelector,
        WholeNetworkRegressor,
    )
    from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan
    from latency_predictors.profilers import Reach, make_profiler, profiler_for_profile
    from latency_predictors.timing import Timing, TimingConfig
    from latency_predictors.tuning import Schedule
    from latency_predictors.tvm_profiler import TVMProfiler, parse_target

__all__ = [
    "BlockLatencyRegressor",
    "BlockSumRegressor",
    "CostModel",
    "DatabaseError",
    "DeviceProfile",
    "EagerProfiler",
    "InputError",
    "Measurement",
    "MeasurementStore",
    "PredictorsError",
    "ProfileBuilder",
    "ProfileExistsError",
    "ProfilePlan",
    "ProfilingError",
    "Reach",
    "RegressorSelector",
    "Schedule",
    "TVMProfiler",
    "Timing",
    "TimingConfig",
    "WholeNetworkRegressor",
    "fit_cost_model",
    "make_profiler",
    "open_engine",
    "parse_target",
    "profiler_for_profile",
    "validate_device_name",
    "validation_figures",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'latency_predictors' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"latency_predictors.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
