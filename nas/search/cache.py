"""The accuracy cache: one row per (supernet checkpoint sha256, arch key, evaluation settings).

Accuracy does not depend on the device, so every arch is evaluated once per checkpoint and
settings, whichever device's search asked first; a search for a new device then only
runs cost predictors. SQLite in the workspace by default, any SQLAlchemy URL for a team
(the same PostgreSQL as the studies). Inserts of the same key by two workers at once
keep the first row (accuracy of one arch under one settings is deterministic).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
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
    select,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from latency_predictors.database import database_url, open_engine
from nas.errors import EdgenasError

_metadata = MetaData()
_table = Table(
    "edgenas_accuracy_cache",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("checkpoint_sha256", String(64), nullable=False, index=True),
    Column("settings_key", String(64), nullable=False),
    Column("arch_key", Text, nullable=False),
    Column("arch_hash", String(64), nullable=False),
    Column("accuracy", Float, nullable=False),
    Column("loss", Float, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("settings", Text, nullable=False),
    Column("created", DateTime, nullable=False),
    UniqueConstraint("checkpoint_sha256", "settings_key", "arch_hash", name="one_per_arch"),
)


def settings_key(settings: dict[str, Any]) -> str:
    """A short stable hash of the evaluation settings (split sizes, batch size, precision...)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedAccuracy:
    accuracy: float
    loss: float
    samples: int


class AccuracyCache:
    """Accuracy per arch for one checkpoint and one evaluation settings."""

    def __init__(self, url: str | Path, checkpoint_sha256: str, settings: dict[str, Any]) -> None:
        self.url = database_url(url)
        self.sha = checkpoint_sha256
        self.settings = settings
        self.key = settings_key(settings)
        self.engine = open_engine(self.url, "accuracy cache")
        try:
            _metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise EdgenasError(f"cannot use the accuracy cache {url} ({first}); pass --cache with another "
                               "database or move the damaged file aside") from None

    def load_all(self) -> dict[str, CachedAccuracy]:
        """Every cached arch of this checkpoint and settings, by arch key (one query)."""
        stmt = select(_table.c.arch_key, _table.c.accuracy, _table.c.loss, _table.c.samples).where(
            _table.c.checkpoint_sha256 == self.sha, _table.c.settings_key == self.key
        )
        with self.engine.connect() as conn:
            return {r[0]: CachedAccuracy(r[1], r[2], r[3]) for r in conn.execute(stmt)}

    def get(self, arch_key: str) -> CachedAccuracy | None:
        stmt = select(_table.c.accuracy, _table.c.loss, _table.c.samples).where(
            _table.c.checkpoint_sha256 == self.sha,
            _table.c.settings_key == self.key,
            _table.c.arch_hash == _hash(arch_key),
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else CachedAccuracy(row[0], row[1], row[2])

    def put(self, arch_key: str, value: CachedAccuracy) -> None:
        """Store one result at once (committed); a concurrent insert of the same key wins."""
        row = dict(
            checkpoint_sha256=self.sha,
            settings_key=self.key,
            arch_key=arch_key,
            arch_hash=_hash(arch_key),
            accuracy=value.accuracy,
            loss=value.loss,
            samples=value.samples,
            settings=json.dumps(self.settings, sort_keys=True),
            created=_dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None),
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(_table.insert().values(**row))
        except IntegrityError:
            pass

    def count(self) -> int:
        return len(self.load_all())


def _hash(arch_key: str) -> str:
    return hashlib.sha256(arch_key.encode()).hexdigest()
