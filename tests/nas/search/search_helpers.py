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
    """Complete trials of study ``name``; 0 while the study does not exist yet (polling)."""
    from sqlalchemy.exc import OperationalError

    try:
        return len(complete(load(url, name)))
    except KeyError:  # optuna: no study of that name (yet)
        return 0
    except OperationalError:  # the database file or its tables are still being created
        return 0
