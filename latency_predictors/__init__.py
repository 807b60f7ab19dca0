"""What a device costs: TVM profilers, energy meters, measurement store, predictors, profiles.

Imports without TVM (TVM is imported inside the functions that compile and time).

Example::

    from latency_predictors import DeviceProfile, MeasurementStore, fit_cost_model

    profile = DeviceProfile.load(Path("edgenas-workspace/profiles/laptop.json"))
    model = fit_cost_model(profile, MeasurementStore("edgenas-workspace/measurements.db"))
    model.predict(archs)["latency_ms"]
"""

from latency_predictors.device_profile import (
    CostModel,
    DeviceProfile,
    fit_cost_model,
    validate_device_name,
)
from latency_predictors.eager_profiler import EagerProfiler
from latency_predictors.errors import ProfileExistsError, ProfilingError
from latency_predictors.measurements import Measurement, MeasurementStore
from latency_predictors.metrics import validation_figures
from latency_predictors.predictors import (
    BlockLatencyRegressor,
    BlockSumRegressor,
    RegressorSelector,
    WholeNetworkRegressor,
)
from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan
from latency_predictors.timing import Timing, TimingConfig
from latency_predictors.tuning import Schedule
from latency_predictors.tvm_profiler import TVMProfiler, parse_target

__all__ = [
    "BlockLatencyRegressor",
    "BlockSumRegressor",
    "CostModel",
    "DeviceProfile",
    "EagerProfiler",
    "Measurement",
    "MeasurementStore",
    "ProfileBuilder",
    "ProfileExistsError",
    "ProfilePlan",
    "ProfilingError",
    "RegressorSelector",
    "Schedule",
    "TVMProfiler",
    "Timing",
    "TimingConfig",
    "WholeNetworkRegressor",
    "fit_cost_model",
    "parse_target",
    "validate_device_name",
    "validation_figures",
]
