"""The workspace: the one place that knows where runs, studies, profiles and models live.

A workspace is a folder chosen by ``--workspace DIR``, else the environment variable
``EDGENAS_WORKSPACE``, else ``./edgenas-workspace``. Every command takes ``--workspace``
and every path or database URL inside it comes from :class:`Workspace`::

    WORKSPACE/
      runs/NAME/                 supernet training runs (edgenas train)
      profiles/NAME.json         device profiles (edgenas profile, edgenas devices import)
      measurements.db            every measurement of every device
      tuning/NAME/               MetaSchedule records of a device
      studies.db                 Optuna studies (edgenas search)
      accuracy_cache.db          accuracy per (checkpoint, arch): shared by every device's search
      finetune/STUDY/DEVICE-trialN/   fine-tuning checkpoints (edgenas finetune)
      registry/                  registered models: registry.db and artifacts/
      reports/STUDY.html         reports (edgenas report)
      adapt/NAME/                adaptation runs (edgenas adapt)
      quickstart/                what edgenas quickstart writes

Loading a device profile goes through :meth:`Workspace.load_profile`, which checks once,
for every command, that the profile belongs to the space it is used with.

Example::

    from nas.workspace import Workspace

    ws = Workspace.resolve("edgenas-workspace")
    profile = ws.load_profile("laptop", space)
    model = ws.cost_model("laptop", space)      # predictors refitted from the measurements
    model.predict([arch])["latency_ms"]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError

ENV_VAR = "EDGENAS_WORKSPACE"
DEFAULT = "edgenas-workspace"


@dataclass(frozen=True)
class Workspace:
    """A workspace folder (not created until something is written into it)."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | Path | None = None) -> Workspace:
        """``explicit``, else ``$EDGENAS_WORKSPACE``, else ``./edgenas-workspace`` (made absolute)."""
        if explicit:
            root = Path(explicit).expanduser()
        else:
            env = os.environ.get(ENV_VAR)
            root = Path(env).expanduser() if env else Path.cwd() / DEFAULT
        root = root.absolute()
        if root.exists() and not root.is_dir():
            raise EdgenasError(f"workspace {root} is a file, not a folder; pass --workspace DIR")
        try:
            root = root.resolve(strict=False)
        except RuntimeError:  # a symlink loop
            raise EdgenasError(f"workspace {root} is a symbolic-link loop; pass another --workspace DIR") from None
        return cls(root)

    # --- device profiles ------------------------------------------------------------
    @property
    def profiles_dir(self) -> Path:
        return self.root / "profiles"

    def profile_path(self, device: str) -> Path:
        """``profiles/NAME.json`` for a valid device name (letters, digits, ``-_.``)."""
        return self.profiles_dir / f"{check_device_name(device)}.json"

    def device_names(self) -> list[str]:
        """Devices profiled or imported in this workspace."""
        if not self.profiles_dir.is_dir():
            return []
        return sorted(p.stem for p in self.profiles_dir.glob("*.json") if p.is_file())

    @property
    def measurements_url(self) -> str:
        """The measurement store (SQLite) as a SQLAlchemy URL."""
        return f"sqlite:///{self.root / 'measurements.db'}"

    def measurements(self) -> Any:
        """The workspace's :class:`~latency_predictors.measurements.MeasurementStore`."""
        from latency_predictors.measurements import MeasurementStore

        return MeasurementStore(self.measurements_url)

    def tuning_dir(self, device: str) -> Path:
        """MetaSchedule's records for ``device``."""
        return self.root / "tuning" / check_device_name(device)

    def load_profile(self, device: str, space: Any = None) -> Any:
        """The stored :class:`~latency_predictors.device_profile.DeviceProfile` of ``device``.

        With ``space``, the profile must describe that space (same name, and the same value
        for every construction setting both descriptions name): a profile of another space
        or preset is refused in one line, whichever command asks.
        """
        from latency_predictors.device_profile import DeviceProfile

        path = self.profile_path(device)
        if not path.is_file():
            known = self.device_names()
            hint = f"known: {', '.join(known)}" if known else "none is stored yet"
            raise EdgenasError(
                f"no device {device!r} in workspace {self.root} ({hint}); create it with "
                f"`edgenas profile --device {device} ...` or `edgenas devices import {device} ...`"
            )
        try:
            profile = DeviceProfile.load(path)
        except (ValueError, OSError) as exc:
            raise EdgenasError(f"device {device!r}: {exc}") from None
        if space is not None:
            check_profile_space(profile, space)
        return profile

    def cost_model(self, device: str, space: Any) -> Any:
        """``device``'s predictors, refitted from its measurements, for archs of ``space``."""
        from latency_predictors.device_profile import fit_cost_model

        profile = self.load_profile(device, space)
        try:
            return fit_cost_model(profile, self.measurements(), space=space)
        except ValueError as exc:
            raise EdgenasError(f"device {device!r}: {exc}") from None

    # --- training, search, shipping -------------------------------------------------
    def run_dir(self, name: str) -> Path:
        """A supernet training run: ``runs/NAME``."""
        return self.root / "runs" / name

    @property
    def studies_url(self) -> str:
        """Where studies live unless ``--storage`` says otherwise."""
        return f"sqlite:///{self.root / 'studies.db'}"

    @property
    def accuracy_cache_url(self) -> str:
        return f"sqlite:///{self.root / 'accuracy_cache.db'}"

    def finetune_dir(self, study: str, device: str, trial: int) -> Path:
        return self.root / "finetune" / study / f"{check_device_name(device)}-trial{trial}"

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    def registry(self, url: str | None = None, create: bool = True) -> Any:
        """The :class:`~nas.registry.ModelRegistry` (its database: ``url`` or ``registry/registry.db``;
        ``create=False``: a registry that does not exist yet is an error, not a new empty one)."""
        from nas.registry import ModelRegistry

        return ModelRegistry(self.registry_dir, url=url, create=create)

    def report_path(self, name: str) -> Path:
        return self.root / "reports" / f"{name}.html"

    def adapt_dir(self, name: str) -> Path:
        """An ``edgenas adapt`` run whose config names no ``out_dir``."""
        return self.root / "adapt" / name

    @property
    def quickstart_dir(self) -> Path:
        return self.root / "quickstart"


def check_device_name(name: str) -> str:
    """``name`` if it can name a device profile file, else a one-line error.

    Letters, digits, ``-``, ``_`` and ``.``; not empty, not ``.`` or ``..``, at most 100
    characters. A device name becomes a file name, so a path must never pass.
    """
    from latency_predictors.device_profile import validate_device_name
    from latency_predictors.errors import InputError

    try:
        return validate_device_name(name)
    except InputError as exc:
        raise EdgenasError(str(exc)) from None


def check_profile_space(profile: Any, space: Any) -> None:
    """Refuse a profile measured on another space, or on the same space built differently."""
    described = space.describe()
    if profile.space.get("name") != space.name or any(
        k in described and described[k] != v for k, v in profile.space.items()
    ):
        was, now = _short(profile.space), _short(described)
        if was == now:  # same name and preset, other settings: show them
            was, now = str(profile.space), str(described)
        raise EdgenasError(
            f"device {profile.name!r} was profiled on space {was}, not on {now}; "
            f"profile this space under another name (edgenas profile --device {profile.name}-{space.name} "
            f"--space {space.name} ...) or use the space it was profiled on"
        )


def _short(described: dict[str, Any]) -> str:
    """A space description in a few words: its name and preset, or its settings when short."""
    if "preset" in described:
        text = f"{described.get('name')} (preset {described['preset']})"
    else:
        text = str(described)
    return text if len(text) <= 160 else text[:157] + "..."


__all__ = ["DEFAULT", "ENV_VAR", "Workspace", "check_device_name", "check_profile_space"]
