"""Reading studies back in the search tests."""

from __future__ import annotations

import warnings
from typing import Any


def load(url: str, name: str) -> Any:
    import optuna

    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from latency_predictors.database import database_url

    return optuna.load_study(study_name=name, storage=database_url(url))


def complete(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(states=(TrialState.COMPLETE,))


def count_complete(url: str, name: str) -> int:
    """Complete trials of study ``name``; 0 while the study does not exist yet (polling).

    One SQL count (loading thousands of trials through Optuna to count them would take
    longer than the search being watched)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from latency_predictors.database import database_url

    engine = create_engine(database_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM trials JOIN studies ON trials.study_id = studies.study_id "
                "WHERE studies.study_name = :n AND trials.state = 'COMPLETE'"), {"n": name}).scalar_one())
    except OperationalError:  # the database file or its tables are still being created
        return 0
    finally:
        engine.dispose()
