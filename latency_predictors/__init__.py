"""What a device costs: TVM profilers, energy meters, measurement store, predictors, profiles."""

__all__: list[str] = []
