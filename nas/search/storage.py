"""Where a study lives: a SQLite file in the workspace (default), any RDB URL, or a journal.

* no ``--storage``: ``sqlite:///WORKSPACE/studies.db`` (one machine, one or a few workers);
* ``postgresql://...``, ``mysql://...``, ``sqlite:///...``: an Optuna ``RDBStorage`` with
  a heartbeat, so a worker that dies (``kill -9``, a lost host) has its running trial
  failed after the grace period and retried with the same parameters by
  ``RetryHeartbeatStaleTrialCallback``;
* ``journal:PATH`` or a path ending in ``.log``/``.journal``: Optuna's append-only
  ``JournalStorage`` on a (shared) file system.

Reachability is checked before any study is opened, so a wrong URL is a one-line error
and nothing is written. Optuna is imported lazily (``pip install edgenas[search]``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import EdgenasError

HEARTBEAT_S = 10
"""Seconds between a running trial's heartbeats on RDB storage."""
GRACE_S = 40
"""A running trial without a heartbeat for this long belongs to a dead worker."""
MAX_RETRY = 3
"""How often a dead worker's trial is retried (same parameters) before it stays failed."""


@dataclass(frozen=True)
class StorageSpec:
    """A parsed ``--storage``: ``kind`` is ``rdb`` or ``journal``; ``target`` the URL or path."""

    kind: str
    target: str

    @property
    def display(self) -> str:
        """The URL with any password masked (for messages and result files)."""
        return mask_password(self.target)

    @property
    def is_sqlite(self) -> bool:
        return self.kind == "rdb" and self.target.startswith("sqlite")


def mask_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def require_optuna() -> Any:
    """Import optuna, or explain which extra installs it."""
    import warnings

    try:
        import optuna
    except ImportError:
        raise EdgenasError("searching needs optuna: pip install 'edgenas[search]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and their retry callback are marked experimental; they are what we rely on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def parse_storage(value: str | None, workspace: Path) -> StorageSpec:
    """``--storage`` to a :class:`StorageSpec` (default: the workspace's SQLite file)."""
    if not value:
        return StorageSpec("rdb", f"sqlite:///{(workspace / 'studies.db').resolve()}")
    if value.startswith("journal:"):
        return StorageSpec("journal", str(Path(value[len("journal:"):]).expanduser().resolve()))
    if "://" not in value:
        if value.endswith((".log", ".journal")):
            return StorageSpec("journal", str(Path(value).expanduser().resolve()))
        raise EdgenasError(
            f"--storage {value!r} is neither a database URL (sqlite:///FILE, postgresql://USER@HOST/DB) "
            "nor a journal (journal:PATH or a path ending in .log)"
        )
    scheme = value.split("://", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
        raise EdgenasError(f"--storage scheme {scheme!r} is not supported; use sqlite, postgresql, mysql or journal:PATH")
    if scheme == "postgres":
        value = "postgresql" + value[len("postgres"):]
    return StorageSpec("rdb", with_driver(value))


def with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 picks psycopg 3 by
    default, the ``search`` extra installs psycopg2 (either works)."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def check_reachable(spec: StorageSpec) -> None:
    """Connect once (5 s timeout) so an unreachable server is a one-line error, not a hang."""
    if spec.kind == "journal":
        parent = Path(spec.target).parent
        if not parent.is_dir():
            raise EdgenasError(f"--storage journal {spec.target}: folder {parent} does not exist; create it or fix the path")
        return
    if spec.is_sqlite:
        path = spec.target.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    args = {"connect_timeout": 5} if spec.target.startswith("postgresql") else {}
    try:
        engine = create_engine(spec.target, connect_args=args)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except (SQLAlchemyError, ImportError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise EdgenasError(
            f"cannot reach study storage {spec.display} ({first}); start the database or fix --storage"
        ) from None


def open_storage(spec: StorageSpec, heartbeat: bool = True) -> Any:
    """The Optuna storage object: RDB with heartbeat and retry of dead workers' trials, or a journal."""
    optuna = require_optuna()
    if spec.kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(spec.target))
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = dict(
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if spec.is_sqlite:
        # Several workers on one SQLite file wait for each other's writes instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    storage = None
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(spec.target, engine_kwargs=engine_kwargs, **kwargs)
            break
        except Exception as exc:  # two workers creating the schema of a new database at once
            if attempt == 4:
                raise EdgenasError(f"cannot open study storage {spec.display}: {str(exc).splitlines()[0]}") from None
            time.sleep(0.5 + attempt)
    if spec.is_sqlite:
        _fast_sqlite(storage.engine)
    return storage


def _fast_sqlite(engine: Any) -> None:
    """WAL journal with ``synchronous=NORMAL``: a commit no longer waits for fsync (a
    search writes a dozen small rows per trial). A killed process loses nothing
    committed; only an OS crash or power loss can drop the last commits."""
    from sqlalchemy import event

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    engine.dispose()
    event.listen(engine, "connect", pragmas)
