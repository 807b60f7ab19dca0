"""One way to open a database URL, shared by every store of the project.

The measurement store, the accuracy cache, the model registry and the Optuna studies all
keep their rows in a SQLAlchemy database: an embedded SQLite file by default, any server
(PostgreSQL, MySQL) for a team. This module is the one place that knows how to open
one, so they all behave alike:

- a plain path is a SQLite file (its folder is created); ``postgres://`` is spelled
  ``postgresql://`` and gets the PostgreSQL driver that is installed;
- SQLite waits up to 60 s for another writer instead of failing, and runs in WAL mode with
  ``synchronous=NORMAL`` (a commit does not wait for fsync: a killed process loses
  nothing committed; only an OS crash or power loss can drop the last commits);
- a server is asked once, with a 5 s connect timeout, before anything is written, so an
  unreachable one is a one-line :class:`~latency_predictors.errors.DatabaseError` that
  names the URL (password masked) and the fix, never a hang.

It lives in ``latency_predictors`` (the lowest package that stores rows) so that ``nas``
can build on it without an import going the wrong way.

Example::

    engine = open_engine("edgenas-workspace/measurements.db", what="measurement store")
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from latency_predictors.errors import DatabaseError

SQLITE_TIMEOUT_S = 60
"""How long SQLite waits for another process's write before giving up."""
CONNECT_TIMEOUT_S = 5
"""How long a database server may take to accept a connection."""
SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb")


def database_url(url_or_path: str | Path) -> str:
    """A SQLAlchemy URL: a path becomes ``sqlite:///ABSOLUTE_PATH``; ``postgres://`` becomes
    ``postgresql://`` with the installed driver. Raises :class:`DatabaseError` for a scheme
    that is not supported."""
    text = str(url_or_path)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    scheme = text.split("://", 1)[0].split("+", 1)[0]
    if scheme == "postgres":
        text, scheme = "postgresql" + text[len("postgres"):], "postgresql"
    if scheme not in SCHEMES:
        raise DatabaseError(
            f"database URL scheme {scheme!r} is not supported ({mask_password(text)}); "
            "use sqlite:///FILE, postgresql://USER@HOST/DB or mysql://USER@HOST/DB"
        )
    return _with_driver(text)


def mask_password(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and result files)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for in-memory databases and other servers)."""
    if not is_sqlite(url):
        return None
    path = url.split(":///", 1)[-1] if ":///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def engine_options(url: str) -> dict[str, Any]:
    """Keyword arguments for ``sqlalchemy.create_engine`` (also Optuna's ``engine_kwargs``)."""
    if is_sqlite(url):
        return {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    if url.startswith(("mysql", "mariadb")):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    return {"pool_pre_ping": True}


def prepare(url: str, what: str) -> None:
    """Make a SQLite file's folder, or check that a server answers (one line if not)."""
    path = sqlite_path(url)
    if path is not None:
        if path.is_dir():
            raise DatabaseError(f"the {what} database {path} is a directory; give a file path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder of the {what} database {path} ({exc.strerror}); "
                                "fix the path or its permissions") from None
        return
    if is_sqlite(url):
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(url, **engine_options(url))
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseError(
            f"cannot reach the {what} database {mask_password(url)} ({first}); start the database or fix the URL"
        ) from None


def use_wal(engine: Any) -> None:
    """Run every new SQLite connection of ``engine`` in WAL mode with ``synchronous=NORMAL``."""
    from sqlalchemy import event

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    engine.dispose()  # connections opened before the listener would keep the old mode
    event.listen(engine, "connect", pragmas)


def open_engine(url_or_path: str | Path, what: str) -> Any:
    """A SQLAlchemy engine for ``url_or_path`` (see the module docstring for what it does).

    ``what`` names the store in error messages ("measurement store", "model registry").
    """
    from sqlalchemy import create_engine

    url = database_url(url_or_path)
    prepare(url, what)
    engine = create_engine(url, **engine_options(url))
    if is_sqlite(url):
        use_wal(engine)
    return engine


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 picks psycopg 3 by
    default, the ``search`` extra installs psycopg2 (either works)."""
    if not url.startswith("postgresql://"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


__all__ = ["DatabaseError", "database_url", "engine_options", "is_sqlite", "mask_password", "open_engine", "prepare",
           "sqlite_path", "use_wal"]
