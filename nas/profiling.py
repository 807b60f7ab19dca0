"""Profile a device: time its blocks and whole networks through TVM, fit and store its predictors.

:func:`profile_device` is what ``edgenas profile`` runs. Every measurement is committed to
the workspace's measurement store as it is taken, so an interrupted profile resumes where
it stopped when called again with the same arguments. The profile records how the device
was reached (including the cross compiler), so later measurements of fine-tuned models
(:func:`nas.ship.ship`) compile and time exactly the same way.

Example::

    from nas.profiling import profile_device
    from nas.workspace import Workspace

    profile = profile_device(Workspace.resolve(), "laptop", {"kind": "llvm", "num-cores": 1},
                             space="mbv3", budget_minutes=10)
    profile.validation[profile.predictor]["within_10pct"]
"""

from __future__ import annotations

import json
from typing import Any

from nas.errors import EdgenasError
from nas.spaces import build_space
from nas.workspace import Workspace, check_device_name

WAIT_SHARE = 30
"""A measurement waits for the machine's fast state at most the budget / this (20 s for a
10-minute profile, 6 s for the quickstart's 3 minutes)."""


def profile_device(
    workspace: Workspace,
    device: str,
    target: str | dict[str, Any],
    *,
    space: str | Any = "mbv3",
    preset: str | None = None,
    reach: Any = None,
    backend: str = "tvm",
    tune_trials: int = 0,
    repeat: int = 15,
    clock: str = "auto",
    budget_minutes: float = 20.0,
    holdout: int | None = None,
    train: int | None = None,
    max_blocks: int | None = None,
    seed: int = 0,
    drift_correction: bool = True,
    state_wait_s: float = 20.0,
    progress: bool = True,
) -> Any:
    """Profile ``device`` (a new name, or one to resume) and write ``profiles/NAME.json``.

    ``target`` is a TVM target (JSON text or dict); ``space`` a space name (with
    ``preset``) or a built space; ``reach`` a :class:`~latency_predictors.profilers.Reach`
    (default: this machine). ``clock`` ``auto`` is the model thread's CPU time on a local
    single-threaded CPU target and elapsed time elsewhere
    (:func:`~latency_predictors.profilers.resolve_clock`); ``drift_correction`` pairs every
    measurement with a reference network (:mod:`latency_predictors.reference`) and, unless
    ``state_wait_s`` is 0, times only in the machine's fast state, waiting up to that many
    seconds per measurement for it, and never more than ``budget_minutes * 60 /``
    :data:`WAIT_SHARE` (:mod:`latency_predictors.machine_state`). Returns the
    :class:`~latency_predictors.device_profile.DeviceProfile`.
    """
    from latency_predictors.device_profile import DeviceProfile
    from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan
    from latency_predictors.profilers import Reach, make_profiler, resolve_clock
    from latency_predictors.timing import TimingConfig
    from latency_predictors.tuning import Schedule
    from latency_predictors.tvm_profiler import parse_target

    check_device_name(device)
    built = build_space(space, preset=preset) if isinstance(space, str) else space
    reach = reach or Reach()
    target = parse_target(target)
    # one measurement's wait for the fast state never takes more than a thirtieth of the budget
    # (3-minute quickstart profile: 6 s), so a slow machine still gets its networks measured
    wait = min(state_wait_s, budget_minutes * 60 / WAIT_SHARE)
    timing = TimingConfig(repeat=repeat, clock=resolve_clock(clock, target, reach, backend), state_wait_s=wait)
    plan = ProfilePlan(budget_minutes=budget_minutes, seed=seed, holdout=holdout, train=train, max_blocks=max_blocks,
                       drift_correction=drift_correction)
    schedule = Schedule.from_trials(tune_trials, workspace.tuning_dir(device))
    profiler = make_profiler(target, backend=backend, reach=reach, timing=timing, schedule=schedule)
    described = profiler.describe()
    profile = DeviceProfile(
        name=device, space=built.describe(), target=described["target"], reached=reach.to_json(),
        backend=backend, schedule=schedule.to_json(), schedule_label=schedule.label,
        timing=timing.to_json(), energy=described.get("energy", "not measured"),
    )  # fmt: skip
    _refuse_other_profile(workspace, profile)
    builder = ProfileBuilder(profile, built, profiler, workspace.measurements(), workspace.profiles_dir, plan=plan,
                             progress=progress)  # fmt: skip
    return builder.run()


def _refuse_other_profile(workspace: Workspace, profile: Any) -> None:
    """Resuming is fine; profiling over a profile of another space, target or origin is not."""
    path = workspace.profile_path(profile.name)
    if not path.is_file():
        return
    old = workspace.load_profile(profile.name)
    same = {k: getattr(old, k) for k in ("space", "target", "backend", "schedule_label")}
    new = {k: getattr(profile, k) for k in ("space", "target", "backend", "schedule_label")}
    if same != new or old.reached.get("kind") == "import":
        first = next((k for k in same if same[k] != new[k]), "reached")
        raise EdgenasError(
            f"device {profile.name!r} already exists with another {first} ({json.dumps(same.get(first, old.reached))[:120]}); "
            "measurements of the two would mix: choose another --device name"
        )


def noise_text(noise: dict[str, Any] | None) -> str:
    """The noise floor in words and figures: ``noise floor CV 1.2%, max deviation 2.5%
    (uncorrected CV 14.0%), drift range 61%, drift exponent 0.9, machine slow in 35% of
    readings (3 of 190 measurements not in its fast state)`` (the exponent: the share of the
    reference's slow-down removed, chosen per profile; the state: how often the state gate
    found the machine slow, :mod:`latency_predictors.machine_state`); ``""`` when it was
    not measured."""
    noise = noise or {}
    if "cv_pct" not in noise:
        return ""
    text = f"noise floor CV {noise['cv_pct']:.1f}%, max deviation {noise['max_rel_dev_pct']:.1f}%"
    if "uncorrected_cv_pct" in noise:
        text += f" (uncorrected CV {noise['uncorrected_cv_pct']:.1f}%)"
    if "drift_range_pct" in noise:
        text += f", drift range {noise['drift_range_pct']:.0f}%"
    if "exponent" in noise:
        text += f", drift exponent {noise['exponent']:g}"
    state = noise.get("state")
    if state:
        text += (f", machine slow in {state['slow_readings_pct']:.0f}% of readings"
                 f" ({state['not_in_state']} of {state['measurements']} measurements not in its fast state)")
    return text


def summary_line(profile: Any) -> str:
    """One line: predictor, held-out accuracy, noise floor as figures, energy, what was
    measured, and why it measured less than usual (a short budget)."""
    parts = [f"{profile.name}: predictor {profile.predictor}"]
    few = " (few: short budget)" if profile.plan.get("holdout_from_budget") else ""
    per_metric = getattr(profile, "metric_validation", None) or {None: profile.validation}
    for metric, table in per_metric.items():
        figures = table.get(profile.predictor, {})
        if "within_10pct" in figures:
            parts.append(
                ("" if metric is None else f"{metric} ") +
                f"{100 * figures['within_10pct']:.0f}% within ±10% on {figures['n']} held-out networks{few} "
                f"(MAPE {figures['mape_pct']:.1f}%, Spearman {figures['spearman']:.3f})"
            )
    noise = noise_text(profile.noise_floor)
    if noise:
        parts.append(noise)
    parts.append(f"energy {profile.energy}")
    counts = ", ".join(f"{n} {role}" for role, n in sorted(profile.counts.items()) if n)
    return "; ".join(parts) + f"; measured {counts}"


__all__ = ["noise_text", "profile_device", "summary_line"]
