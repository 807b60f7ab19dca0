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

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency_predictors.database import (
    DatabaseError,
    database_url,
    engine_options,
    mask_password,
    prepare,
    use_wal,
)
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


def parse_storage(value: str | None, studies_url: str) -> StorageSpec:
    """``--storage`` to a :class:`StorageSpec` (``None``: ``studies_url``, the workspace's SQLite file)."""
    if not value:
        return StorageSpec("rdb", studies_url)
    if value.startswith("journal:"):
        return StorageSpec("journal", str(Path(value[len("journal:"):]).expanduser().resolve()))
    if "://" not in value:
        if value.endswith((".log", ".journal")):
            return StorageSpec("journal", str(Path(value).expanduser().resolve()))
        raise EdgenasError(
            f"--storage {value!r} is neither a database URL (sqlite:///FILE, postgresql://USER@HOST/DB) "
            "nor a journal (journal:PATH or a path ending in .log)"
        )
    try:
        return StorageSpec("rdb", database_url(value))
    except DatabaseError as exc:
        raise EdgenasError(f"--storage: {exc}") from None


def check_reachable(spec: StorageSpec) -> None:
    """Fail in one line, before anything is written, when the storage cannot be used."""
    if spec.kind == "journal":
        path = Path(spec.target)
        if path.is_dir():
            raise EdgenasError(f"--storage journal {path} is a directory; name a file in it, e.g. journal:{path / 'studies.log'}")
        if not path.parent.is_dir():
            raise EdgenasError(f"--storage journal {spec.target}: folder {path.parent} does not exist; create it or fix the path")
        return
    try:
        prepare(spec.target, "study")
    except DatabaseError as exc:
        raise EdgenasError(f"{exc} (--storage)") from None


def open_storage(spec: StorageSpec, heartbeat: bool = True) -> Any:
    """The Optuna storage object: RDB with heartbeat and retry of dead workers' trials, or a journal."""
    optuna = require_optuna()
    if spec.kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        _check_journal(Path(spec.target))
        try:
            storage = JournalStorage(JournalFileBackend(spec.target))
            storage.get_all_studies()  # replays the journal now: a damaged file fails here, in one line
        except Exception as exc:  # Optuna raises JSON, Unicode and Key errors from a foreign file
            if isinstance(exc, OSError):
                raise
            what = f"{type(exc).__name__}: {str(exc)[:80]}" if str(exc) else type(exc).__name__
            raise EdgenasError(
                f"--storage journal {spec.target} is not a readable Optuna journal ({what}); point --storage at "
                "another file, or move this one aside (it is left as it is)"
            ) from None
        return storage
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = dict(
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )
    engine_kwargs = engine_options(spec.target)
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
        use_wal(storage.engine)
    return storage


def _check_journal(path: Path) -> None:
    """A journal file is JSON lines of Optuna operations; anything else is refused before
    Optuna appends to it (it would then fail on every later read)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as f:
        head = f.read(1 << 16)
    problem = None
    try:
        lines = head.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        problem = "it is not UTF-8 text"
    else:
        for line in lines[:-1] or lines:
            if not line.strip():
                continue
            try:
                op = json.loads(line)
            except json.JSONDecodeError:
                problem = f"a line is not JSON: {line[:40]!r}"
                break
            if not isinstance(op, dict) or "op_code" not in op:
                problem = f"a line is not an Optuna operation: {line[:40]!r}"
                break
    if problem:
        raise EdgenasError(f"--storage journal {path} is not an Optuna journal ({problem}); point --storage at "
                           "another file, or move this one aside (it is left as it is)")

