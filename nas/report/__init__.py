"""The report a person picks a model from: Pareto fronts per device, the predictors'
validation, registered models with predicted against measured cost, and what training
and search cost; and, for ``edgenas adapt`` outputs, accuracy per method over rounds and
bytes per method. One self-contained HTML file plus PNG figures beside it
(:func:`write_report`)."""

from nas.report.adapt import AdaptRun, load_adapt_run
from nas.report.collect import DeviceView, ReportData, TrialPoint, collect
from nas.report.page import write_report

__all__ = ["AdaptRun", "DeviceView", "ReportData", "TrialPoint", "collect", "load_adapt_run", "write_report"]
