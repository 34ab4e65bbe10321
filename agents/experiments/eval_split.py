"""The training's periodic evaluation, its scenarios shared between this process and worker processes.

Training runs on one core (``torch_threads`` 1, the serial kernel), and the evaluation of a snapshot between two
rollouts ran there too, scenario after scenario. With ``eval_workers: 2`` (the default) the scenarios are dealt
round-robin: this process evaluates the 1st, 3rd, ... while a worker evaluates the others on the model and
VecNormalize statistics of the same moment (sent as SB3's own saved bytes, loaded on ``cfg.device``), and training
waits for both, as before. Every evaluation is deterministic on its fixed seeds, so the rows are the same to the
last digit for any number of workers (``tests/test_eval_split.py``). Kill and resume work as before: nothing is
in flight once :meth:`EvalSplit.evaluate` returns, and a worker exits when the training process dies.

Workers are ``spawn``-ed (a clean interpreter: no inherited torch or numba threads), ignore Ctrl-C (the
training process handles it and shuts them down), and keep their scenarios' rule policies between evaluations
(``RulePolicy`` only: its reset rebuilds all its state). A worker that dies, or does not answer within
``WORKER_PATIENCE_S`` plus 20 times this process's share, is reported; its scenarios are then evaluated here.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import Any

from scaling_env.config import EnvConfig

from ..learned.ppo import PPOPolicy, algo_class
from ..learned.residual import ResidualPolicy, make_rule
from ..rules.base import RulePolicy
from .evaluate import run_policy_episodes
from .tables import summarise_episodes
from .train_config import TrainConfig

Scenarios = list[tuple[str, EnvConfig]]
Log = Any
WORKER_PATIENCE_S = 120.0  # plus 20 times this process's share of the evaluation
CLOSE_GRACE_S = 10.0


class ScenarioEvaluator:
    """The evaluation policies of some scenarios (each scenario's rule policies made once), run on a model."""

    def __init__(self, scenarios: Scenarios, cfg: TrainConfig, n_obs: int) -> None:
        self.scenarios = scenarios
        self.cfg = cfg
        self.n_obs = n_obs
        self.rules = {name: self._make_rules(name, config) for name, config in scenarios}

    def _make_rules(self, name: str, config: EnvConfig) -> tuple[Any, list[Any]] | None:
        r = self.cfg.residual
        if r is None:
            return None
        return make_rule(r.policy, config, scenario=name), [make_rule(x, config, scenario=name) for x in r.experts]

    def _rules(self, name: str, config: EnvConfig) -> tuple[Any, list[Any]] | None:
        """The scenario's rules: those made before when they are rule policies (their reset rebuilds all their
        state), else new ones (a reference may keep state across episodes), as each evaluation made them."""
        rules = self.rules[name]
        if rules is not None and not all(isinstance(x, RulePolicy) for x in (rules[0], *rules[1])):
            rules = self._make_rules(name, config)
        return rules

    def policy(self, name: str, config: EnvConfig, model: Any, vec_normalize: Any) -> Any:
        """The policy the evaluation runs on ``name``: the model's (with the residual's rules, if any)."""
        agent = PPOPolicy(
            config,
            model=model,
            vec_normalize=vec_normalize,
            source="(training)",
            n_obs=self.n_obs,
            corrections=self.cfg.residual is not None,
        )
        rules = self._rules(name, config)
        if rules is None:
            return agent
        r = self.cfg.residual
        assert r is not None
        return ResidualPolicy(
            config,
            rule=rules[0],
            agent=agent,
            max_offset=r.max_offset,
            experts=rules[1],
            hold=r.hold,
            sync=r.sync,
        )

    def evaluate(self, model: Any, vec_normalize: Any) -> dict[str, dict[str, float]]:
        """Each scenario's mean metrics over its evaluation episodes (``n_eval_episodes`` from ``eval_seed``)."""
        out = {}
        for name, config in self.scenarios:
            policy = self.policy(name, config, model, vec_normalize)
            episodes = run_policy_episodes(policy, config, self.cfg.n_eval_episodes, self.cfg.eval_seed)
            out[name] = summarise_episodes(episodes)
        return out


# ---- in a worker process
_WORKER: dict[str, ScenarioEvaluator] = {}


def _start_worker(torch_threads: int) -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    parent = mp.parent_process()
    if parent is not None:  # a killed training process leaves no worker behind
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    torch.set_num_threads(torch_threads)


def _exit_with(sentinel: int) -> None:
    wait([sentinel])
    os._exit(0)


def _evaluate_in_worker(job: tuple[str, Scenarios, TrainConfig, int, bytes, bytes]) -> dict[str, dict[str, float]]:
    key, scenarios, cfg, n_obs, model_bytes, stats_bytes = job
    if key not in _WORKER:
        _WORKER[key] = ScenarioEvaluator(scenarios, cfg, n_obs)
    model = algo_class(cfg.algo).load(io.BytesIO(model_bytes), device=cfg.device)
    vec_normalize = None
    if stats_bytes:
        cls, state = pickle.loads(stats_bytes)
        vec_normalize = cls.__new__(cls)
        vec_normalize.__setstate__(state)  # as VecNormalize.load leaves it before set_venv: no env below
    return _WORKER[key].evaluate(model, vec_normalize)


def _ready() -> bool:
    return True


def _statistics(vec_normalize: Any) -> bytes:
    """The VecNormalize (subclass) state that normalises observations, without its env (as its own pickling
    leaves it, which a VecNormalize loaded without an env cannot repeat)."""
    if vec_normalize is None:
        return b""
    state = {k: v for k, v in vars(vec_normalize).items() if k not in ("venv", "class_attributes", "returns")}
    return pickle.dumps((type(vec_normalize), state))


# ---- in the training process
class EvalSplit:
    """Evaluates a training model on all ``scenarios``, ``cfg.eval_workers`` processes sharing them (this one
    included); :meth:`close` shuts the workers down."""

    def __init__(self, scenarios: Scenarios, cfg: TrainConfig, n_obs: int, log: Log = print) -> None:
        self.scenarios = scenarios
        self.cfg = cfg
        self.n_obs = n_obs
        self.log = log
        n = max(1, min(cfg.eval_workers, len(scenarios)))
        shares = [scenarios[i::n] for i in range(n)]  # round-robin: this process takes the first share
        self.local = ScenarioEvaluator(shares[0], cfg, n_obs)
        self.remote = [(f"share{i}", share) for i, share in enumerate(shares[1:], start=1)]
        self.pool: ProcessPoolExecutor | None = None
        if self.remote:
            # started with Ctrl-C ignored, which a spawned interpreter keeps: one pressed while a worker starts
            # is the training process's alone
            main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                self.pool = ProcessPoolExecutor(
                    max_workers=len(self.remote),
                    mp_context=mp.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(cfg.torch_threads,),
                )
                for _ in self.remote:  # start the workers now: their imports overlap the first rollouts
                    self.pool.submit(_ready)
            finally:
                if main:
                    signal.signal(signal.SIGINT, previous)

    def evaluate(self, model: Any, vec_normalize: Any) -> list[tuple[str, dict[str, float]]]:
        """(scenario, mean metrics) for every scenario, in the scenarios' order."""
        futures: list[Future] = []
        if self.pool is not None:
            buffer = io.BytesIO()
            model.save(buffer)
            stats = _statistics(vec_normalize)
            try:
                for key, share in self.remote:
                    job = (key, share, self.cfg, self.n_obs, buffer.getvalue(), stats)
                    futures.append(self.pool.submit(_evaluate_in_worker, job))
            except BrokenProcessPool:
                self._lost("could not take the evaluation")
        start = time.perf_counter()
        results = self.local.evaluate(model, vec_normalize)
        # a worker's share takes about as long as this one's: one far slower has hung
        patience = WORKER_PATIENCE_S + 20.0 * (time.perf_counter() - start)
        for future in futures:
            if self.pool is None:  # lost with another worker: the rest of the shares are evaluated below
                break
            try:
                results.update(future.result(timeout=patience))
            except BrokenProcessPool:
                self._lost("stopped")
            except FutureTimeout:
                self._lost(f"did not answer within {patience:.0f} s")
        missing = [(name, config) for name, config in self.scenarios if name not in results]
        if missing:  # a lost worker's share of this evaluation
            results.update(ScenarioEvaluator(missing, self.cfg, self.n_obs).evaluate(model, vec_normalize))
        return [(name, results[name]) for name, _ in self.scenarios]

    def _lost(self, what: str) -> None:
        if self.pool is None:
            return
        self.log(
            f"an evaluation worker process {what}; this process evaluates all the scenarios from now on "
            "(the same rows, more wall time)"
        )
        self._stop(0.0)
        self.local = ScenarioEvaluator(self.scenarios, self.cfg, self.n_obs)
        self.remote = []

    def _stop(self, grace_s: float) -> None:
        """Shut the pool down; a worker still busy after ``grace_s`` is terminated."""
        if self.pool is None:
            return
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = None
        deadline = time.monotonic() + grace_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()  # SIGKILL: also ends a stopped or hung worker

    def close(self) -> None:
        """Shut the workers down (one still evaluating gets a few seconds, then is terminated)."""
        self._stop(CLOSE_GRACE_S)
