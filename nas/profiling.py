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
    clock: str = "wall",
    budget_minutes: float = 20.0,
    holdout: int | None = None,
    train: int | None = None,
    max_blocks: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Any:
    """Profile ``device`` (a new name, or one to resume) and write ``profiles/NAME.json``.

    ``target`` is a TVM target (JSON text or dict); ``space`` a space name (with
    ``preset``) or a built space; ``reach`` a :class:`~latency_predictors.profilers.Reach`
    (default: this machine). Returns the :class:`~latency_predictors.device_profile.DeviceProfile`.
    """
    from latency_predictors.device_profile import DeviceProfile
    from latency_predictors.profile_builder import ProfileBuilder, ProfilePlan
    from latency_predictors.profilers import Reach, make_profiler
    from latency_predictors.timing import TimingConfig
    from latency_predictors.tuning import Schedule
    from latency_predictors.tvm_profiler import parse_target

    check_device_name(device)
    built = build_space(space, preset=preset) if isinstance(space, str) else space
    reach = reach or Reach()
    timing = TimingConfig(repeat=repeat, clock=clock)
    sizes = {k: v for k, v in (("holdout", holdout), ("train", train), ("max_blocks", max_blocks)) if v is not None}
    plan = ProfilePlan(budget_minutes=budget_minutes, seed=seed, **sizes)
    schedule = Schedule.from_trials(tune_trials, workspace.tuning_dir(device))
    profiler = make_profiler(parse_target(target), backend=backend, reach=reach, timing=timing, schedule=schedule)
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


def summary_line(profile: Any) -> str:
    """One line: predictor, held-out accuracy, noise floor, energy and what was measured."""
    figures = profile.validation.get(profile.predictor, {})
    noise = profile.noise_floor or {}
    parts = [f"{profile.name}: predictor {profile.predictor}"]
    if "within_10pct" in figures:
        parts.append(
            f"{100 * figures['within_10pct']:.0f}% within ±10% on {figures['n']} held-out networks "
            f"(MAPE {figures['mape_pct']:.1f}%, Spearman {figures['spearman']:.3f})"
        )
    if "cv_pct" in noise:
        parts.append(f"noise floor CV {noise['cv_pct']:.1f}%")
    parts.append(f"energy {profile.energy}")
    return "; ".join(parts) + "; " + json.dumps(profile.counts, sort_keys=True)


__all__ = ["profile_device", "summary_line"]
