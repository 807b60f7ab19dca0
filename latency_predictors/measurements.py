"""Every measurement, persisted the moment it is taken (SQLite by default, any SQLAlchemy URL).

One row is one thing timed on one device: a block, a whole network, a repeat of the
noise-floor model or a calibration reading of the reference network. It records how it
was measured (backend, target, TVM version, schedule, repeats, input shape) next to the
result (median, spread, every repeat, energy where a meter exists, and the reference
network's reading beside every repeat when the measurement was drift corrected: then the
median and spread are of the corrected repeats, see :class:`~latency_predictors.timing.Timing`). A profile that is interrupted resumes by asking :meth:`get` before
timing anything, so nothing is measured twice.

Example::

    store = MeasurementStore("sqlite:///edgenas-workspace/measurements.db")
    if store.get(key) is None:
        store.add(Measurement(...))
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from latency_predictors.database import database_url, open_engine
from latency_predictors.errors import DatabaseError, InputError

ROLES = ("block", "train", "holdout", "noise", "reference", "import", "verify")
"""``block``: one block at its shapes; ``train``/``holdout``: whole networks used for fitting
or kept out for validation; ``noise``: the same network timed again and again;
``reference``: a calibration reading of the reference network; ``import``: a whole network
measured elsewhere (CSV); ``verify``: a whole network a search measured on the device to
check its candidates (``edgenas search --verify``), used for fitting. Whole networks of a
space's non-default phase carry ``PHASE:ROLE`` (``decode:holdout``; see
:mod:`latency_predictors.cost_metrics`)."""

NETWORK_ROLES = ("train", "holdout", "import", "verify")

_CHUNK = 5000
"""Rows per ``executemany`` in :meth:`MeasurementStore.add_many` (bounds memory of one statement)."""

_metadata = MetaData()
_table = Table(
    "measurements",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("device", String(200), nullable=False, index=True),
    Column("space", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("item", Text, nullable=False),
    Column("backend", String(20), nullable=False),
    Column("schedule", String(100), nullable=False),
    Column("target", Text, nullable=False),
    Column("tvm_version", String(50), nullable=False),
    Column("input_shape", String(100), nullable=False),
    Column("number", Integer, nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("median_ms", Float, nullable=False),
    Column("spread_ms", Float, nullable=False),
    Column("results_ms", Text, nullable=False),
    Column("energy_mj", Float, nullable=True),
    Column("energy_method", String(50), nullable=True),
    Column("created", DateTime, nullable=False),
    Column("reference_ms", Text, nullable=True),
    UniqueConstraint("device", "space", "role", "item", "backend", "schedule", name="one_per_item"),
)


@dataclass(frozen=True)
class Measurement:
    """One timed item. ``item`` is the block's key or the arch's key (canonical JSON);
    ``energy_mj`` is ``None`` where no meter measured it (never estimated);
    ``reference_ms`` the reference network's reading beside each repeat (empty when the
    measurement was not drift corrected)."""

    device: str
    space: str
    role: str
    item: str
    backend: str
    schedule: str
    target: dict[str, Any]
    tvm_version: str
    input_shape: tuple[int, ...]
    number: int
    repeat: int
    median_ms: float
    spread_ms: float
    results_ms: tuple[float, ...] = ()
    energy_mj: float | None = None
    energy_method: str | None = None
    created: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))
    reference_ms: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        phase, _, base = self.role.rpartition(":")
        if self.role not in ROLES and not (phase.isidentifier() and base in NETWORK_ROLES):
            raise InputError(f"measurement role {self.role!r} is unknown; use one of {ROLES}")
        if not self.median_ms > 0:
            raise InputError(f"latency must be positive, got {self.median_ms} ms for {self.item[:80]}")
        if self.energy_mj is not None and not self.energy_mj > 0:
            raise InputError(f"energy must be positive, got {self.energy_mj} mJ for {self.item[:80]}")

    @property
    def identity(self) -> tuple[str, str, str, str, str, str]:
        return (self.device, self.space, self.role, self.item, self.backend, self.schedule)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


class MeasurementStore:
    """Measurements in a relational database (created on first use)."""

    def __init__(self, url: str | Path) -> None:
        self.url = database_url(url)
        self.engine = open_engine(self.url, "measurement store")
        try:
            _metadata.create_all(self.engine)
            _add_missing_columns(self.engine)
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise DatabaseError(f"cannot use the measurement store {url} ({first}); "
                                "point --workspace at another folder or move the damaged file aside") from None

    def add(self, m: Measurement, *, replace_existing: bool = False) -> None:
        """Persist ``m`` at once (committed before returning)."""
        row = _to_row(m)
        with self.engine.begin() as conn:
            if replace_existing:
                conn.execute(_table.delete().where(*_where(m.identity)))
            conn.execute(_table.insert().values(**row))

    def add_many(self, measurements: Iterable[Measurement], *, progress: bool = False, desc: str = "storing") -> int:
        """Persist all of ``measurements`` in one transaction (all or none), in chunks.

        A row per transaction costs a disk sync each (minutes for 100,000 rows); one
        transaction costs one. Returns how many rows were stored.
        """
        rows = [_to_row(m) for m in measurements]
        with self.engine.begin() as conn, tqdm(total=len(rows), desc=desc, unit="row", disable=not progress,
                                               delay=1.0, leave=False) as bar:  # fmt: skip
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start : start + _CHUNK]
                conn.execute(_table.insert(), chunk)
                bar.update(len(chunk))
        return len(rows)

    def get(
        self, device: str, space: str, role: str, item: str, backend: str, schedule: str
    ) -> Measurement | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_table).where(*_where((device, space, role, item, backend, schedule)))
            ).first()
        return _from_row(row._mapping) if row is not None else None

    def query(
        self,
        device: str,
        *,
        space: str | None = None,
        role: str | None = None,
        backend: str | None = None,
        schedule: str | None = None,
    ) -> list[Measurement]:
        """Measurements of ``device`` (filtered), in the order they were taken."""
        stmt = select(_table).where(_table.c.device == device)
        for col, value in (("space", space), ("role", role), ("backend", backend), ("schedule", schedule)):
            if value is not None:
                stmt = stmt.where(_table.c[col] == value)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(_table.c.id)).all()
        return [_from_row(r._mapping) for r in rows]

    def schedules(self, device: str, *, space: str | None = None, role: str | None = None,
                  backend: str | None = None) -> list[str]:
        """The distinct schedule labels of ``device``'s measurements (filtered), sorted."""
        stmt = select(_table.c.schedule).where(_table.c.device == device).distinct()
        for col, value in (("space", space), ("role", role), ("backend", backend)):
            if value is not None:
                stmt = stmt.where(_table.c[col] == value)
        with self.engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(stmt))

    def devices(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted({r[0] for r in conn.execute(select(_table.c.device).distinct())})

    def delete(self, device: str, *, role: str | None = None) -> int:
        stmt = _table.delete().where(_table.c.device == device)
        if role is not None:
            stmt = stmt.where(_table.c.role == role)
        with self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount or 0)


def _add_missing_columns(engine: Any) -> None:
    """Stores written before ``reference_ms`` existed get the column (empty for old rows)."""
    have = {c["name"] for c in inspect(engine).get_columns("measurements")}
    if "reference_ms" not in have:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE measurements ADD COLUMN reference_ms TEXT"))


def _where(identity: tuple[str, ...]) -> list[Any]:
    cols = ("device", "space", "role", "item", "backend", "schedule")
    return [_table.c[c] == v for c, v in zip(cols, identity)]


def _to_row(m: Measurement) -> dict[str, Any]:
    return {
        "device": m.device,
        "space": m.space,
        "role": m.role,
        "item": m.item,
        "backend": m.backend,
        "schedule": m.schedule,
        "target": json.dumps(m.target, sort_keys=True),
        "tvm_version": m.tvm_version,
        "input_shape": json.dumps(list(m.input_shape)),
        "number": m.number,
        "repeat": m.repeat,
        "median_ms": m.median_ms,
        "spread_ms": m.spread_ms,
        "results_ms": json.dumps(list(m.results_ms)),
        "energy_mj": m.energy_mj,
        "energy_method": m.energy_method,
        "created": m.created,
        "reference_ms": json.dumps(list(m.reference_ms)) if m.reference_ms else None,
    }


def _from_row(row: Any) -> Measurement:
    data = dict(row)
    data.pop("id")
    data["target"] = json.loads(data["target"])
    data["input_shape"] = tuple(json.loads(data["input_shape"]))
    data["results_ms"] = tuple(json.loads(data["results_ms"]))
    data["reference_ms"] = tuple(json.loads(data["reference_ms"])) if data.get("reference_ms") else ()
    return Measurement(**data)


__all__ = ["NETWORK_ROLES", "ROLES", "Measurement", "MeasurementStore", "sqlite_url"]
