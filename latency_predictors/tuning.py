"""Which schedules the timed code uses: TVM's default pipeline, or MetaSchedule tuning.

A :class:`Schedule` is recorded with every measurement and in the device profile, so a
figure always says whether it came from untuned or tuned code. MetaSchedule keeps its
records in a JSON database directory that is reused across runs: a task (a fused
operator at one shape) tuned once is not tuned again, only looked up.

MetaSchedule needs ``psutil`` and crashes (a segfault in ``tvm::ffi::ToJSONGraph``) with
``apache-tvm-ffi==0.1.15.post2``; ``0.1.14.post1`` works, and the ``tvm`` extra pins it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency_predictors.errors import InputError

BUILD_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Schedule:
    """``kind`` is ``"untuned"`` or ``"metaschedule"`` (with ``trials`` per compiled
    module, at most, and the tuning ``database`` directory reused across runs)."""

    kind: str = "untuned"
    trials: int = 0
    database: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("untuned", "metaschedule"):
            raise InputError(f"schedule kind {self.kind!r} is unknown; use untuned or metaschedule")
        if self.kind == "metaschedule" and (self.trials < 1 or not self.database):
            raise InputError("metaschedule needs trials >= 1 and a database directory")

    @classmethod
    def from_trials(cls, trials: int, database: str | Path) -> Schedule:
        """Untuned for 0 trials, else MetaSchedule with ``trials`` and ``database``."""
        if trials < 0:
            raise InputError(f"--tune-trials must be >= 0, got {trials}")
        return cls("metaschedule", trials, str(database)) if trials else cls()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "trials": self.trials, "database": self.database}

    @property
    def label(self) -> str:
        """Short form stored with each measurement (``untuned``, ``metaschedule-64``)."""
        return self.kind if self.kind == "untuned" else f"{self.kind}-{self.trials}"


def _cost_model() -> str:
    """MetaSchedule's learned cost model needs xgboost; without it candidates are drawn at
    random from the search space (still measured, so still a valid, if slower, tuning)."""
    try:
        import xgboost  # noqa: F401
    except ImportError:
        return "random"
    return "xgb"


def compile_tuned(mod: Any, target: Any, schedule: Schedule) -> Any:
    """Tune the tasks of ``mod`` not yet in ``schedule.database``, then compile with the
    best records (tasks without a record fall back to the default schedule)."""
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    work_dir = Path(str(schedule.database))
    work_dir.mkdir(parents=True, exist_ok=True)
    mod = relax.get_pipeline("zero")(mod)
    database = ms.database.JSONDatabase(work_dir=str(work_dir))
    tasks = ms.relax_integration.extract_tasks(mod, target)
    todo = [
        t
        for t in tasks
        if database.query_tuning_record(t.dispatched[0], target, t.task_name) is None
    ]
    if todo:
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            todo, work_dir=str(work_dir)
        )
        # The runner starts a `tvm.exec.popen_worker` process at once and keeps it until the
        # runner is garbage-collected: shut it down here, also when tuning fails or is interrupted.
        runner = ms.runner.LocalRunner(timeout_sec=BUILD_TIMEOUT_S)
        try:
            ms.relax_integration.tune_tasks(
                tasks=contexts,
                task_weights=weights,
                work_dir=str(work_dir),
                max_trials_global=schedule.trials,
                num_trials_per_iter=min(64, schedule.trials),
                database=database,
                # a worker process imports TVM before it builds: on a busy 2-core machine that
                # alone can pass MetaSchedule's 30 s default, failing every candidate
                builder=ms.builder.LocalBuilder(max_workers=1, timeout_sec=BUILD_TIMEOUT_S),
                runner=runner,
                cost_model=_cost_model(),
            )
        finally:
            runner.pool.shutdown()
    return ms.relax_integration.compile_relax(database, mod, target, None)
