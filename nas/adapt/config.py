"""``edgenas adapt`` configurations: typed, frozen sections validated by ``load_config``.

Two kinds of config, so that nothing in a file is silently ignored:

- :class:`SimulationConfig`: many simulated devices over rounds, every method compared
  (``edgenas adapt sim.yaml``);
- :class:`RoundConfig`: one real round from a cloud checkpoint over device directories on
  disk (a config with ``checkpoint:``).

:func:`load_adapt_config` reads a YAML file and picks the kind by the ``checkpoint`` key.
The sections are what the code runs with: a device's local training *is* the
:class:`LocalSection` of the config, and the cloud's offline training the
:class:`CloudSection`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

METHODS = ("nebula", "no_adaptation", "local_only", "fedavg", "heterofl")


@dataclass(frozen=True)
class DataSection:
    name: Literal["mnist1d", "digits", "cifar10", "cifar100"] = "mnist1d"
    root: str | None = None
    proxy_samples: int = 3000
    device_samples: int = 16000


@dataclass(frozen=True)
class DevicesSection:
    count: int = 100
    per_round_min: int = 10
    per_round_max: int = 25
    classes_per_device: int = 3
    min_samples: int = 50
    max_samples: int = 150
    test_samples: int = 60
    budget_low: float = 0.15
    budget_high: float = 1.0
    fail_prob: float = 0.05
    straggler_prob: float = 0.05

    def __post_init__(self) -> None:
        if not 1 <= self.per_round_min <= self.per_round_max <= self.count:
            raise ValueError("need 1 <= per_round_min <= per_round_max <= count")
        for name in ("fail_prob", "straggler_prob"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1)")
        if not 0 < self.budget_low <= self.budget_high:
            raise ValueError("need 0 < budget_low <= budget_high (fractions of the full model's cost)")


@dataclass(frozen=True)
class CloudSection:
    """The cloud's offline training on proxy data (pretraining, then sharpening)."""

    preset: str | None = None
    pretrain_steps: int = 1500
    sharpen_steps: int = 500
    batch_size: int = 64
    lr: float = 0.05
    balance_weight: float = 0.05
    sharpen_weight: float = 0.2
    min_importance: float = 0.05


@dataclass(frozen=True)
class LocalSection:
    """Local fine-tuning on a device (the same for every method): SGD over ``epochs``."""

    epochs: int = 2
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # after local training, recompute batch-norm statistics over the local data (as OFA does
    # for sub-networks), so they match the weights the device ends with
    recalibrate_bn: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("local training needs epochs >= 0, batch_size >= 1 and lr > 0")


@dataclass(frozen=True)
class FaultsSection:
    """Injected faults, to exercise the cloud's checks (probabilities per returned update)."""

    corrupt_prob: float = 0.0
    nan_prob: float = 0.0
    stale_prob: float = 0.0


@dataclass(frozen=True)
class SimulationConfig:
    """Many simulated devices over rounds; every method of ``methods`` on the same draws.

    ``out_dir`` ``None``: ``WORKSPACE/adapt/CONFIG_NAME`` (the CLI fills it in).
    """

    data: DataSection = field(default_factory=DataSection)
    devices: DevicesSection = field(default_factory=DevicesSection)
    cloud: CloudSection = field(default_factory=CloudSection)
    local: LocalSection = field(default_factory=LocalSection)
    faults: FaultsSection = field(default_factory=FaultsSection)
    rounds: int = 20
    continuous: bool = False
    drift_share: float = 0.3
    methods: tuple[str, ...] = METHODS
    target_accuracy: float = 80.0
    seed: int = 0
    out_dir: str | None = None
    parallel: Literal["auto", "ray", "sequential"] = "auto"
    workers: int = 2
    # how the cloud model splits into device sub-models: Nebula's modular layers ("modular",
    # the nebula space) or the mbv3 elastic supernet ("elastic"; no HeteroFL there)
    decomposition: Literal["modular", "elastic"] = "modular"

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods: unknown {unknown}; choose from {', '.join(METHODS)}")
        if self.rounds < 1 or self.workers < 1:
            raise ValueError("rounds and workers must be at least 1")
        if not 0 <= self.drift_share <= 1:
            raise ValueError(f"drift_share must be in [0, 1], got {self.drift_share}")
        if self.decomposition == "elastic" and "heterofl" in self.methods:
            raise ValueError("methods: heterofl needs width-scaled copies, which the elastic decomposition "
                             "does not have; drop it or use decomposition: modular")


@dataclass(frozen=True)
class RoundConfig:
    """One real round: ``checkpoint`` (an ``edgenas train`` output, or a nebula cloud
    ``.safetensors``) adapted on ``device_dirs``, written to ``out_dir``.

    ``min_importance`` and ``preset`` apply to a nebula checkpoint (modules below that
    share of a device's gate weight are not sent; the preset the model was built with,
    default: from the data's shape). ``out_dir`` ``None``: ``WORKSPACE/adapt/CONFIG_NAME``.
    """

    checkpoint: str
    device_dirs: tuple[str, ...]
    local: LocalSection = field(default_factory=LocalSection)
    min_importance: float = 0.05
    preset: str | None = None
    seed: int = 0
    out_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.device_dirs:
            raise ValueError("device_dirs is empty: list the device data directories")
        if not 0 <= self.min_importance < 1:
            raise ValueError(f"min_importance must be in [0, 1), got {self.min_importance}")


def load_adapt_config(path: str | Path) -> SimulationConfig | RoundConfig:
    """The config at ``path``: a :class:`RoundConfig` if it names a ``checkpoint``, else a
    :class:`SimulationConfig` (unknown keys are refused either way)."""
    from nas.config import load_config, read_yaml
    from nas.errors import EdgenasError

    data = read_yaml(path)
    real = isinstance(data, dict) and "checkpoint" in data
    try:
        return load_config(RoundConfig if real else SimulationConfig, data)
    except EdgenasError as exc:
        if "unknown key" not in str(exc):
            raise
        kind = ("it names a checkpoint, so it is one real round (simulation keys do not apply)" if real
                else "without a checkpoint it is a simulation")
        raise EdgenasError(f"{path}: {exc}; {kind}") from None
