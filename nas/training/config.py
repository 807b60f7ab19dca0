"""The training config (``edgenas train CONFIG.yaml``), validated into frozen dataclasses.

Every key, its type, default and meaning is listed in docs/configuration.md (generated
from these dataclasses and docs/scripts/config_keys.yml); ``experiments/configs/`` has
configs to copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from nas.data.config import DataConfig

PhaseName = Literal["largest", "kernel", "depth", "expand", "heads", "width"]


@dataclass(frozen=True)
class PhasePlan:
    """How a family of spaces shrinks progressively: its phases in order, the choices a
    phase may narrow, which of them each phase holds at their maximum, and the phases that
    sort channels by importance before they start. The default split of ``steps`` (no
    ``phases`` given) is 30 %, 35 %, 35 % over the three phases after ``largest``.
    """

    order: tuple[str, ...]
    choice_keys: tuple[str, ...]
    fixed_at_max: dict[str, tuple[str, ...]]
    sorting: tuple[str, ...]

    @property
    def full(self) -> str:
        """The phase in which every dimension is elastic (plain sandwich training)."""
        return self.order[-1]


#: OFA's order for convolutional spaces (mbv3): kernel, then depth, then expand ratios.
CNN_PLAN = PhasePlan(
    order=("largest", "kernel", "depth", "expand"),
    choice_keys=("depths", "kernels", "expands", "resolutions"),
    fixed_at_max={
        "largest": ("depths", "kernels", "expands", "resolutions"),
        "kernel": ("depths", "expands"),
        "depth": ("expands",),
        "expand": (),
    },
    sorting=("expand",),
)

#: Transformers (gpt): depth, then attention heads, then width (embedding and MLP ratio);
#: heads and MLP neurons are sorted by importance before the heads and the width phase.
TRANSFORMER_PLAN = PhasePlan(
    order=("largest", "depth", "heads", "width"),
    choice_keys=("depths", "heads", "embeds", "mlp_ratios", "contexts"),
    fixed_at_max={
        "largest": ("depths", "heads", "embeds", "mlp_ratios", "contexts"),
        "depth": ("heads", "embeds", "mlp_ratios"),
        "heads": ("embeds", "mlp_ratios"),
        "width": (),
    },
    sorting=("heads", "width"),
)

PLANS: tuple[PhasePlan, ...] = (CNN_PLAN, TRANSFORMER_PLAN)
PHASE_ORDER: tuple[str, ...] = CNN_PLAN.order
CHOICE_KEYS: tuple[str, ...] = CNN_PLAN.choice_keys


@dataclass(frozen=True)
class SpaceSection:
    """Which search space to train: ``get_space(name, **options)``.

    ``options.num_classes`` defaults to the data set's number of classes.
    """

    name: str = "mbv3"
    options: dict[str, Any] = field(default_factory=lambda: {"preset": "small"})


@dataclass(frozen=True)
class PhaseConfig:
    """One progressive-shrinking phase: which dimension becomes elastic, for how long.

    ``largest`` trains the full network alone. For mbv3: ``kernel`` makes kernels elastic
    (depth and expand at their maximum); ``depth`` adds elastic depth; ``expand`` adds
    elastic expand ratios (channels are sorted by importance first). For gpt: ``depth``
    makes depth (and context) elastic; ``heads`` adds elastic heads per layer; ``width``
    adds elastic embedding width and MLP ratios (heads and neurons sorted first by both).
    The choice lists narrow a phase further (OFA runs depth as ``[3, 4]`` then ``[2, 3, 4]``);
    a space accepts only its own (see :class:`PhasePlan`).
    """

    name: PhaseName
    steps: int
    lr: float | None = None
    depths: tuple[int, ...] | None = None
    kernels: tuple[int, ...] | None = None
    expands: tuple[int, ...] | None = None
    resolutions: tuple[int, ...] | None = None
    heads: tuple[int, ...] | None = None
    embeds: tuple[int, ...] | None = None
    mlp_ratios: tuple[int, ...] | None = None
    contexts: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class TrainSection:
    """Optimisation: the sandwich rule, optimizer, schedule, precision and device."""

    steps: int | None = None
    batch_size: int = 64
    num_random: int = 2
    distill: bool = True
    distill_weight: float | None = None
    label_smoothing: float = 0.1
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 3e-5
    bn_weight_decay: bool = False
    warmup_steps: int = 0
    min_lr: float = 0.0
    grad_clip: float | None = None
    progressive: bool = False
    phases: tuple[PhaseConfig, ...] = ()
    amp: Literal["auto", "bf16", "none"] = "auto"
    channels_last: bool | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.phases and not self.progressive:
            raise ValueError("phases are given but progressive is false; set progressive: true or drop phases")
        if self.steps is None and not self.phases:
            raise ValueError("steps is required (or give progressive phases with their own steps)")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.phases and self.steps is not None and self.steps != sum(p.steps for p in self.phases):
            raise ValueError(
                f"steps ({self.steps}) differs from the phases' total ({sum(p.steps for p in self.phases)}); drop one"
            )
        if self.progressive and not self.phases and self.steps is not None and self.steps < 3:
            raise ValueError(f"steps must be at least 3 with progressive shrinking, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.num_random < 0:
            raise ValueError(f"num_random must be >= 0, got {self.num_random}")
        if self.distill_weight is not None and not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight must be in [0, 1], got {self.distill_weight}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr], got {self.min_lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {list(self.betas)}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 (or null for none), got {self.grad_clip}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.resolved_phases())

    def resolved_phases(self, plan: PhasePlan = CNN_PLAN) -> tuple[PhaseConfig, ...]:
        """The phases to run: the configured ones, the plan's three by default, or one full phase.

        Plain sandwich training is a single full phase over the whole space (``expand`` for
        mbv3, ``width`` for gpt: every dimension elastic from the first step; no channel
        sorting). ``plan`` is the space's (:func:`nas.training.phases.plan_for`).
        """
        if self.phases:
            return self.phases
        assert self.steps is not None
        if not self.progressive:
            return (PhaseConfig(plan.full, self.steps),)  # type: ignore[arg-type]
        first, second, third = plan.order[1:]
        a = max(1, round(0.3 * self.steps))
        b = max(1, round(0.35 * self.steps))
        return (
            PhaseConfig(first, a),  # type: ignore[arg-type]
            PhaseConfig(second, b),  # type: ignore[arg-type]
            PhaseConfig(third, self.steps - a - b),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class CheckpointSection:
    """How often to save (a checkpoint is also saved at the end and on Ctrl-C / SIGTERM)."""

    every_steps: int = 100
    keep: int = 1

    def __post_init__(self) -> None:
        if self.every_steps < 1:
            raise ValueError(f"every_steps must be at least 1, got {self.every_steps}")
        if self.keep < 1:
            raise ValueError(f"keep must be at least 1, got {self.keep}")


@dataclass(frozen=True)
class TrainConfig:
    """A whole ``edgenas train`` config."""

    seed: int = 0
    output_dir: str | None = None
    log_every: int = 10
    space: SpaceSection = field(default_factory=SpaceSection)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSection = field(default_factory=lambda: TrainSection(steps=100))
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)

    def __post_init__(self) -> None:
        if self.log_every < 1:
            raise ValueError(f"log_every must be at least 1, got {self.log_every}")


#: Keys that may change between a run and its resumption (they do not change the result).
RESUMABLE_KEYS: frozenset[str] = frozenset(
    {"output_dir", "log_every", "checkpoint.every_steps", "checkpoint.keep", "data.workers", "data.eval_tokens",
     "train.threads"}
)
