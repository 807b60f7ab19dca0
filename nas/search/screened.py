"""``--sampler screened``: spend evaluations only on archs that are predicted to fit, and
rank them with an accuracy predictor trained on the study's own trials.

Costs are predictions and cost nothing; accuracy is the expensive part (a supernet
evaluation, or a table look-up standing in for one). NSGA-II spends trials on archs the
cost predictor already knows to be over budget and needs many generations to climb
towards the budget's edge, where the most accurate feasible archs are. This sampler
works like OFA's predictor-guided search (an accuracy predictor screens candidates;
every arch on the front is still *evaluated*):

1. the first ``n_startup`` trials are random archs that meet every budget by prediction
   (rejection sampling over the Optuna parameters, so any space works);
2. then, every ``batch`` completed trials (or every tenth of the trials done, when
   that is more: refits grow with the log of the trials, not the trials), a small
   gradient-boosted regressor (50 trees of 8 leaves: on NAS-Bench-201 it ranks as well as
   200 trees of 31 leaves, at a quarter of the cost) is fitted on (``space.encode(arch)``,
   evaluated accuracy) of the completed trials, and a pool of candidates is ranked by
   predicted accuracy: every arch when the space has at most ``exhaustive`` parameter
   combinations (``nb201``'s 15,625, screened by cost once), otherwise random archs,
   every one-parameter change and crossovers of the best evaluated archs, whose costs are
   predicted down the ranking, a chunk at a time, until enough fit. Predicted-infeasible
   and already tried archs are dropped; the next trials are the candidates with the
   highest predicted accuracy, a quarter of them spread over the predicted latency range
   so the front stays wide.

Archs an earlier search of the same accuracy source evaluated (``prior``: parameters and
accuracy; the second search of ``--verify``) count as evaluated trials for the accuracy
predictor and the random start, and are never proposed again.

It is an Optuna sampler: the study, storage, resume and workers are those of any other
sampler. Its state is rebuilt from the study's trials, so a resumed search continues
where it stopped. It needs the problem (space, predicted costs, budget), so it is made
by :func:`nas.search.samplers.make_sampler` with the problem at hand.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler

from nas.search.objectives import LATENCY_BUDGETS, constraint_values
from nas.search.params import ParamRecorder, arch_of_params


class ScreenedSampler(BaseSampler):
    """Optuna sampler (see the module docstring). ``problem`` is a :class:`SearchProblem`."""

    def __init__(self, problem: Any, seed: int | None = 0, n_startup: int = 50, batch: int = 20,
                 pool: int = 500, parents: int = 4, exhaustive: int = 20000,
                 min_samples_leaf: int = 5, refit_fraction: float = 0.1, max_iter: int = 50,
                 learning_rate: float = 0.2, max_leaf_nodes: int = 8, screen_chunk: int = 256,
                 prior: Sequence[tuple[dict[str, Any], float]] = ()) -> None:
        if "accuracy" not in problem.names:
            raise ValueError("the screened sampler needs accuracy among the objectives")
        self.problem = problem
        self.seed = seed
        self.n_startup = n_startup
        self.batch = batch
        self.pool = pool
        self.parents = parents
        self.min_samples_leaf = min_samples_leaf
        self.refit_fraction = refit_fraction
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.screen_chunk = screen_chunk
        self._rng = random.Random(seed)
        self._codes: dict[Any, np.ndarray] = {}
        self._memo: dict[tuple, tuple[Any, Any]] = {}
        self._spare: list[dict[str, Any]] = []
        self._cost_memo: dict[Any, tuple[float, float]] = {}  # arch key -> (excess over the budgets, latency)
        self._threads: Any = None
        probe = ParamRecorder()
        problem.space.suggest(probe)
        self.choices = probe.choices
        self._names = tuple(self.choices)
        self._acc_index = problem.names.index("accuracy")
        self._lat_name = next((n for n in problem.names if n.split("@")[0] in LATENCY_BUDGETS and "@" in n), None)
        self._queue: list[dict[str, Any]] = []
        self._fitted_at = -1
        self._proposals: dict[int, dict[str, Any]] = {}
        sizes = [len(c) for c in self.choices.values()]
        self._everything: tuple | None = None
        if math.prod(sizes) <= exhaustive:
            combos = [dict(zip(self.choices, values)) for values in itertools.product(*self.choices.values())]
            self._everything = self._screen(combos, set())
            self._everything_keys = [self._key(a) for a in self._everything[1]]
            self._everything_X = np.array([problem.space.encode(a) for a in self._everything[1]], dtype=float)
        self._trial_keys: dict[int, Any] = {}
        # archs evaluated by an earlier search of the same accuracy source: (parameters, accuracy)
        self._prior = [(dict(params), float(acc)) for params, acc in prior]
        self._prior_keys = {self._pkey(params) for params, _ in self._prior}

    def _one_thread(self) -> Any:
        """A context that holds OpenMP/BLAS to one thread while the accuracy predictor fits
        or predicts (their threads cost far more than they give on a few hundred rows). The
        controller is made once: inspecting the loaded libraries costs ~8 ms a time."""
        if self._threads is None:
            from threadpoolctl import ThreadpoolController

            self._threads = ThreadpoolController()
        return self._threads.limit(limits=1)

    # --- Optuna's sampler interface ---------------------------------------------------------
    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        params = self._proposals.get(trial.number)
        if params is None:
            params = self._proposals[trial.number] = self._propose(study)
        value = params.get(param_name)
        choices = getattr(param_distribution, "choices", None)
        if choices is not None and value in choices:
            return value
        low, high = getattr(param_distribution, "low", None), getattr(param_distribution, "high", None)
        if choices is None and value is not None and low is not None and low <= value <= high:
            return value
        return self._rng.choice(choices) if choices is not None else self._rng.randint(low, high)

    def before_trial(self, study: Any, trial: Any) -> None:
        pass

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self._proposals.pop(trial.number, None)

    def reseed_rng(self) -> None:
        self._rng = random.Random(self._rng.random())

    # --- proposals ----------------------------------------------------------------------------
    def _arch(self, params: dict[str, Any]) -> Any:
        return self._resolve(params)[1]

    def _key(self, arch: Any) -> Any:
        """What identifies an arch in the sampler's sets: the arch itself where it is
        hashable (every space's frozen dataclass: equal archs build equal networks), else
        its canonical JSON."""
        try:
            hash(arch)
        except TypeError:
            return json.dumps(self.problem.space.arch_to_json(arch), sort_keys=True)
        return arch

    def _pkey(self, params: dict[str, Any]) -> Any:
        """The arch key of a parameter set."""
        return self._resolve(params)[0]

    def _resolve(self, params: dict[str, Any]) -> tuple[Any, Any]:
        """(arch key, arch) of a parameter set, remembered: neighbours and parents of one
        round come back in the next."""
        values = tuple(map(params.get, self._names))
        hit = self._memo.get(values)
        if hit is None:
            if len(self._memo) >= 200_000:
                self._memo.clear()
            arch = arch_of_params(self.problem.space, params)
            hit = self._memo[values] = (self._key(arch), arch)
        return hit

    def _random_params(self) -> dict[str, Any]:
        return {name: self._rng.choice(options) for name, options in self.choices.items()}

    def _random_batch(self, n: int) -> list[dict[str, Any]]:
        """``n`` random parameter sets, drawn a column at a time (a pool is hundreds)."""
        draw = np.random.default_rng(self._rng.getrandbits(63))
        columns = [[options[k] for k in draw.integers(0, len(options), size=n).tolist()]
                   for options in self.choices.values()]
        return [dict(zip(self._names, row)) for row in zip(*columns)]

    def _screen(self, candidates: list[dict[str, Any]], seen: set[Any]) -> tuple[list[dict[str, Any]], list[Any], np.ndarray, np.ndarray]:
        """Unseen, distinct candidates with their archs, predicted excess (<= 0: fits) and latency."""
        kept, archs, keys, order = [], [], set(), []
        for params in candidates:
            key, arch = self._resolve(params)
            if key in seen or key in keys:
                continue
            keys.add(key)
            kept.append(params)
            archs.append(arch)
            order.append(key)
        if not archs:
            return [], [], np.zeros(0), np.zeros(0)
        memo = self._cost_memo
        new = [i for i, key in enumerate(order) if key not in memo]
        if new:  # costs are predictions of a fixed model: an arch met again (a neighbour, a parent) is not predicted again
            costs = self.problem.costs([archs[i] for i in new])
            devices = [d.name for d in self.problem.devices]
            # the relative excess over every budget, for the whole batch at once (arrays in, arrays out)
            excess_by_budget = constraint_values(self.problem.spec.budget, costs, devices)
            excess = (np.max(np.vstack([np.asarray(v, dtype=float) for v in excess_by_budget.values()]), axis=0)
                      if excess_by_budget else np.full(len(new), -1.0))
            latency = np.asarray(costs[self._lat_name], dtype=float) if self._lat_name else np.zeros(len(new))
            if len(memo) >= 200_000:
                memo.clear()
            for i, e, v in zip(new, excess.tolist(), latency.tolist()):
                memo[order[i]] = (e, v)
        pairs = np.array([memo[key] for key in order], dtype=float).reshape(len(order), 2)
        return kept, archs, pairs[:, 0], pairs[:, 1]

    def _propose(self, study: Any) -> dict[str, Any]:
        trials = study.get_trials(deepcopy=False)
        seen = self._seen(trials) | {self._pkey(p) for p in self._proposals.values()}
        return self._next(trials, seen)

    def _seen(self, trials: list[Any]) -> set[Any]:
        seen = set(self._prior_keys)
        for t in trials:
            if t.number in self._trial_keys:
                seen.add(self._trial_keys[t.number])
            elif t.params:
                key = self._pkey(t.params)
                seen.add(key)
                if t.state.is_finished():  # its parameters are final
                    self._trial_keys[t.number] = key
        return seen

    def _next(self, trials: list[Any], seen: set[Any], done: list[Any] | None = None) -> dict[str, Any]:
        if done is None:
            done = self._done(trials)
        n = len(done) + len(self._prior)
        if n < self.n_startup:
            return self._random_feasible(seen)
        if n >= self._fitted_at + self._step(self._fitted_at) or not self._queue:
            self._queue = self._ranked(done, seen)
            self._fitted_at = n
        while self._queue:
            params = self._queue.pop(0)
            if self._pkey(params) not in seen:
                return params
        return self._random_feasible(seen)

    @staticmethod
    def _done(trials: list[Any]) -> list[Any]:
        from optuna.trial import TrialState

        return [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]

    # --- batches (nas.search.engine_local.run_buffered) --------------------------------------------
    def _step(self, n_fitted: int) -> int:
        """Trials between refits: ``batch``, or ``refit_fraction`` of the trials the last
        fit saw when that is more (refits then cost O(log trials), not O(trials))."""
        return max(self.batch, int(self.refit_fraction * max(0, n_fitted)))

    def batch_size(self, n_complete: int) -> int:
        """How many archs to propose before the next results can change a proposal: the
        rest of the random start, then one refit's worth."""
        n_complete += len(self._prior)
        if n_complete < self.n_startup:
            return self.n_startup - n_complete
        if self._fitted_at >= 0 and n_complete < self._fitted_at + self._step(self._fitted_at):
            return self._fitted_at + self._step(self._fitted_at) - n_complete
        return self._step(n_complete)

    def propose_batch(self, trials: list[Any], n: int) -> list[dict[str, Any]]:
        """The next ``n`` parameter sets given the study's ``trials``: the same archs, in
        the same order, as ``n`` Optuna trials asked one after another would get."""
        seen = self._seen(trials) | {self._pkey(p) for p in self._proposals.values()}
        out = []
        done = self._done(trials)  # the trials do not change while a batch is proposed
        for _ in range(n):
            params = self._next(trials, seen, done)
            seen.add(self._pkey(params))
            out.append(params)
        return out

    def _random_feasible(self, seen: set[Any], tries: int = 8, draw: int = 256) -> dict[str, Any]:
        """A random unseen arch that fits by prediction (the least excess one if none does)."""
        if self._everything is not None:
            params, archs, excess, _lat = self._everything
            fits = [i for i in np.flatnonzero(excess <= 0) if self._everything_keys[i] not in seen]
            if fits:
                return params[fits[self._rng.randrange(len(fits))]]
        while self._spare:  # feasible archs of an earlier draw (a draw screens 256 at once)
            params = self._spare.pop()
            if self._pkey(params) not in seen:
                return params
        best: tuple[float, dict[str, Any]] | None = None
        for _ in range(tries):
            params, _archs, excess, _lat = self._screen(self._random_batch(draw), seen)
            fits = [int(i) for i in np.flatnonzero(excess <= 0)]
            if fits:
                self._rng.shuffle(fits)
                self._spare = [params[i] for i in fits[1:]]
                return params[fits[0]]
            if len(params):
                i = int(np.argmin(excess))
                if best is None or excess[i] < best[0]:
                    best = (float(excess[i]), params[i])
        return best[1] if best else self._random_params()

    def _encode(self, key: Any, params: dict[str, Any]) -> np.ndarray:
        code = self._codes.get(key)
        if code is None:
            code = self._codes[key] = np.asarray(self.problem.space.encode(self._arch(params)), dtype=float)
        return code

    def _ranked(self, done: list[Any], seen: set[Any]) -> list[dict[str, Any]]:
        """The next proposals: candidates ranked by predicted accuracy, screened by cost."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        keys = [self._trial_keys.get(t.number) for t in done]
        X = np.array([self._encode(self._pkey(t.params) if k is None else k, t.params)
                      for k, t in zip(keys, done)]
                     + [self._encode(self._pkey(p), p) for p, _ in self._prior], dtype=float)
        y = np.array([t.values[self._acc_index] for t in done] + [a for _, a in self._prior], dtype=float)
        model = HistGradientBoostingRegressor(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                              min_samples_leaf=self.min_samples_leaf,
                                              max_leaf_nodes=self.max_leaf_nodes, random_state=self._rng.randrange(2**31))
        with self._one_thread():
            model.fit(X, y)
        n_next = self._step(len(done) + len(self._prior))
        n_spread = n_next // 4
        if self._everything is not None:
            params, archs, excess, latency = self._everything
            fresh = np.array([k not in seen for k in self._everything_keys], dtype=bool)
            fits = np.flatnonzero((excess <= 0) & fresh)
            if not len(fits):
                return []
            with self._one_thread():
                score = model.predict(self._everything_X[fits])
            order = list(fits[np.argsort(-score)])
            return [params[i] for i in self._pick(order, fits, latency, n_next, n_spread)]
        return self._ranked_pool(done, seen, model, n_next, n_spread)

    def _pick(self, order: list[int], fits: Any, latency: np.ndarray, n_next: int, n_spread: int) -> list[int]:
        """The best ``n_next - n_spread`` of ``order``, then the best of each of ``n_spread``
        latency bands of ``fits`` (a wide front)."""
        picked = order[: n_next - n_spread]
        if n_spread:
            bands = np.array_split(sorted(fits, key=lambda i: latency[i]), n_spread)
            rank = {i: r for r, i in enumerate(order)}
            taken = set(picked)
            for band in bands:
                rest = [i for i in band if i not in taken and i in rank]
                if rest:
                    best = min(rest, key=lambda i: rank[i])
                    picked.append(best)
                    taken.add(best)
        return picked

    def _ranked_pool(self, done: list[Any], seen: set[Any], model: Any, n_next: int,
                     n_spread: int) -> list[dict[str, Any]]:
        """A space too large to enumerate: random archs, every one-parameter change and
        crossovers of the best evaluated archs, ranked by predicted accuracy; costs are
        predicted down the ranking (a chunk at a time) until enough fit, not for all."""
        evaluated = [(t.params, t.values[self._acc_index]) for t in done
                     if all(v <= 0 for v in t.constraints.values())]
        if self._prior:  # an earlier search's archs, feasible by this search's prediction
            params, _archs, excess, _lat = self._screen([p for p, _ in self._prior], set())
            fits = {self._pkey(p) for p, e in zip(params, excess) if e <= 0}
            evaluated += [(p, a) for p, a in self._prior if self._pkey(p) in fits]
        if not evaluated:
            evaluated = [(t.params, t.values[self._acc_index]) for t in done] + self._prior
        top = [p for p, _ in sorted(evaluated, key=lambda e: -e[1])[: self.parents]]
        candidates = self._random_batch(self.pool)
        for params in top:
            for name, options in self.choices.items():
                candidates += [{**params, name: o} for o in options if o != params.get(name)]
        for _ in range(self.pool // 4):
            a, b = self._rng.sample(top, 2) if len(top) > 1 else (top[0], top[0])
            candidates.append({n: (a if self._rng.random() < 0.5 else b).get(n) for n in self.choices})
        kept, keys = [], set()
        for params in candidates:
            key = self._pkey(params)
            if key in seen or key in keys:
                continue
            keys.add(key)
            kept.append((key, params))
        if not kept:
            return []
        with self._one_thread():
            score = model.predict(np.array([self._encode(k, p) for k, p in kept], dtype=float))
        ranked = [kept[i][1] for i in np.argsort(-score, kind="stable")]
        want = max(n_next * 2, 64)  # the spread needs some width beyond the best
        chosen: list[dict[str, Any]] = []
        lat: list[float] = []
        for start in range(0, len(ranked), self.screen_chunk):
            params, _archs, excess, latency = self._screen(ranked[start: start + self.screen_chunk], set())
            for p, e, v in zip(params, excess, latency):
                if e <= 0:
                    chosen.append(p)
                    lat.append(float(v))
            if len(chosen) >= want:
                break
        order = list(range(len(chosen)))
        return [chosen[i] for i in self._pick(order, np.array(order), np.array(lat), n_next, n_spread)]
