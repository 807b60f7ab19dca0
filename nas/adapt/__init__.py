"""Edge-cloud collaborative adaptation (Nebula / ECLM, arXiv 2311.11083) and its baselines.

The cloud model is modular (``search_spaces.modular``): a selector routes inputs to
interchangeable modules. A device gets the modules that matter for its data under its
memory, compute and bandwidth budgets (a knapsack over module importance), fine-tunes
them, and the cloud averages each module over its holders by importance. The mbv3 elastic
supernet is the second decomposition behind the same interface
(:class:`~nas.adapt.decomposition.Decomposition`, ``decomposition: elastic``). The simulator
runs that against no adaptation, local-only training, FedAvg and HeteroFL on the same
devices, data and budgets, with failures, stragglers and checked updates.

Two entry points, one per kind of config (:func:`load_adapt_config` tells them apart):
:func:`simulate` (a :class:`SimulationConfig`: many simulated devices over rounds, every
method) and :func:`adapt_round` (a :class:`RoundConfig`: one real round from a cloud
checkpoint over device directories on disk).

Example::

    from nas.adapt import load_adapt_config, simulate

    config = load_adapt_config("experiments/configs/adapt_mnist1d.yaml")
    results = simulate(config)
    results["summary"]["nebula"]["accuracy_final"]
"""

from nas.adapt.aggregate import weighted_average
from nas.adapt.config import (
    METHODS,
    CloudSection,
    LocalSection,
    RoundConfig,
    SimulationConfig,
    load_adapt_config,
)
from nas.adapt.costs import Cost, ModularCosts
from nas.adapt.decomposition import Decomposition, ElasticDecomposition, ModularDecomposition
from nas.adapt.elastic import choose_elastic_arch, elastic_round
from nas.adapt.knapsack import Infeasible, Item, solve
from nas.adapt.methods import BudgetError, choose_modules
from nas.adapt.partition import DeviceData, PartitionSpec, devices_at, drift, partition
from nas.adapt.round import adapt_round
from nas.adapt.simulator import Simulation, simulate, summarise
from nas.adapt.wire import Update, UpdateRejected, validate

__all__ = [
    "METHODS",
    "BudgetError",
    "CloudSection",
    "Cost",
    "ModularCosts",
    "Decomposition",
    "DeviceData",
    "ElasticDecomposition",
    "Infeasible",
    "Item",
    "LocalSection",
    "ModularDecomposition",
    "PartitionSpec",
    "RoundConfig",
    "SimulationConfig",
    "Simulation",
    "Update",
    "UpdateRejected",
    "adapt_round",
    "choose_elastic_arch",
    "choose_modules",
    "devices_at",
    "drift",
    "load_adapt_config",
    "elastic_round",
    "partition",
    "simulate",
    "solve",
    "summarise",
    "validate",
    "weighted_average",
]
