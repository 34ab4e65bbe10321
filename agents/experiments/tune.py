"""``scaling-env tune``: tune a rule policy's parameters with Optuna, per scenario or as one generalist setting.

    scaling-env tune --policy hpa --scenarios steady,diurnal          # one study per scenario
    scaling-env tune --policy hpa --scenarios steady,diurnal --generalist   # one setting for both
    scaling-env tune --all                                            # regenerate configs/policies/tuned

What is tuned: the parameters a policy file declares in its ``search_space`` (``agents/search_space.py``), starting
from the file's ``params``. The sampler is Optuna's TPE with a fixed seed; the shipped default is enqueued as the
first trial, so a study never reports a setting worse than the default on its own seeds.

Objective: the mean episode reward over the tuning seeds (default 0-19), averaged over the scenarios of a
generalist study. The seeds must be disjoint from the benchmark's evaluation seeds (1000 and up,
``agents.experiments.train_config.FIRST_BENCHMARK_SEED``): a tuned setting evaluated on the seeds it was chosen on
would be flattered. One trial runs all its seeds of a scenario as one batch in the compiled core
(``scaling_env.rollout.rollout``), a few tens of milliseconds. With ``--slo-limit X`` the mean SLO-violation share
must stay at or below X: a *constraint* (Optuna's constrained TPE, ``Trial.set_constraint``), not a penalty: the
result is the best trial that meets it, and none is written if no trial does.

Studies persist in an Optuna storage: by default the SQLite file ``<out>/studies.db`` (``--storage`` takes any URL
Optuna accepts, e.g. ``postgresql://...``, so several processes or machines can share a study). A study is named
``tune:<policy>:<scenario>`` (``tune:<policy>:generalist``); running the same command again continues it: the
trials already finished count towards ``--trials``, and trials left running by a killed process on this machine
are marked failed. ``optuna-dashboard sqlite:///<out>/studies.db`` shows the studies (``pip install
optuna-dashboard``; not a dependency).

Parallel trials (``agents.experiments.execution``): the studies run in rounds. Each round, every unfinished study
samples ``--batch`` trials here (in a fixed order, stored in the study as RUNNING), the trials are evaluated at
once on ``--workers`` local processes or Ray tasks (``--backend ray``, ``--address`` for a cluster), and their
results are told to the storage in the same fixed order. A study's trials therefore depend on ``--batch`` (1 =
sequential TPE, the shipped results) but never on the backend or the number of workers. With several studies a
round holds ``batch`` trials of each. A trial whose worker dies is re-run by Ray (the evaluation is a pure
function of the params and seeds, so a retry gives the same value); if it still fails it is marked FAIL with the
error as a user attribute and its params are enqueued once more (``retry_of``: the next trial asked evaluates
them, so a lost default is not lost), and every trial already told stays in the storage.
Why not Ray Tune's ``OptunaSearch``: it would keep the study in Tune's own experiment state, while ours lives in
the Optuna storage that ``--trials``, resuming, the provenance and ``optuna-dashboard`` read, and Tune would add
its own trial folders and scheduler for jobs that are tens of milliseconds long.

Each result is written as a policy file ``<out>/<scenario>/<policy>.yaml`` (``<out>/generalist/<policy>.yaml``)
with ``policy``, ``params`` and a ``provenance`` mapping (study, trials, seeds, objective, value, date, code
version), which ``make_policy`` loads (``hpa@tuned`` / ``hpa@generalist`` for the shipped ones).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
import yaml
from rich.table import Table

from agents.base import PolicyConfigError, validate_params
from agents.registry import GENERALIST, POLICIES, TUNED_DIR, PolicyFile, default_policy_file, load_policy_file
from agents.search_space import apply_values, get_path
from scaling_env.config import ConfigError
from scaling_env.scenarios import Scenario, load_scenarios
from scaling_env.traces import TraceError

from .benchmark import EVALUATION_SCENARIOS
from .console import console, fail, task_bar
from .execution import ExecutionError, Executor, Failure, make_executor, run_all
from .train_config import BENCHMARK_SEEDS_END, FIRST_BENCHMARK_SEED

DEFAULT_TRIALS = 100
DEFAULT_SEEDS = "0-19"
DEFAULT_OUT = Path("results/tune")
SAMPLER_SEED = 0
REPO_ROOT = Path(__file__).resolve().parents[2]
FINISHED = ("COMPLETE", "PRUNED")  # trial states that count towards --trials


class TuneError(Exception):
    """A user error: bad seeds, a study that does not match the command, a file that must not be overwritten."""


# ------------------------------------------------------------------------------------------ seeds
def parse_seeds(text: str) -> list[int]:
    """``"0-19"``, ``"0,2,5"`` or ``"0-9,20-29"`` as a sorted list of distinct non-negative seeds."""
    seeds: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise TuneError(f"--seeds: range {part!r} ends before it starts")
                seeds.update(range(lo, hi + 1))
            else:
                seeds.add(int(part))
        except ValueError:
            raise TuneError(f"--seeds: expected non-negative integers or ranges such as 0-19, got {part!r}") from None
    if not seeds:
        raise TuneError("--seeds: no seed given")
    return sorted(seeds)


def check_tuning_seeds(seeds: list[int]) -> None:
    """Refuse tuning seeds that the benchmark evaluates on: a setting chosen on them would be judged on them."""
    overlap = [s for s in seeds if FIRST_BENCHMARK_SEED <= s < BENCHMARK_SEEDS_END]
    if overlap:
        shown = ", ".join(str(s) for s in overlap[:5]) + (" ..." if len(overlap) > 5 else "")
        raise TuneError(
            f"--seeds: {shown} overlap the seeds kept for the benchmark's evaluation "
            f"[{FIRST_BENCHMARK_SEED}, {BENCHMARK_SEEDS_END - 1}]; tune on other seeds (e.g. 0-19) so that "
            "the benchmark judges a tuned setting on episodes it was not chosen on"
        )


def format_seeds(seeds: list[int]) -> str:
    """The inverse of :func:`parse_seeds`: ``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    runs: list[list[int]] = []
    for s in sorted(seeds):
        if runs and s == runs[-1][1] + 1:
            runs[-1][1] = s
        else:
            runs.append([s, s])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# ------------------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class Target:
    """One study: a policy tuned on one scenario, or on several as one generalist setting."""

    policy: str
    scenarios: tuple[str, ...]  # scenario names or YAML paths
    generalist: bool

    @property
    def label(self) -> str:
        return GENERALIST if self.generalist else Path(self.scenarios[0]).stem

    @property
    def study_name(self) -> str:
        return f"tune:{self.policy}:{self.label}"

    def out_path(self, out: Path) -> Path:
        return out / self.label / f"{self.policy}.yaml"


def tunable_policies() -> list[str]:
    """Every registered policy whose shipped file declares a search space (static and oracle declare none)."""
    names = []
    for name in POLICIES:
        path = default_policy_file(name)
        if path.is_file() and load_policy_file(path).search_space:
            names.append(name)
    return names


def policy_file(name: str) -> PolicyFile:
    """The shipped file of a tunable policy; a TuneError if it has no search space."""
    if name not in POLICIES:
        raise TuneError(f"--policy: unknown policy {name!r} (known: {', '.join(POLICIES)})")
    path = default_policy_file(name)
    if not path.is_file():
        raise TuneError(f"--policy {name}: {path} does not exist, so there is no search space to tune")
    pf = load_policy_file(path)
    if not pf.search_space:
        raise TuneError(
            f"--policy {name}: {path} declares no search_space, nothing to tune (tunable: "
            f"{', '.join(tunable_policies())})"
        )
    return pf


# ------------------------------------------------------------------------------------------ evaluation
def evaluate(
    name: str, params: dict[str, Any], scenarios: list[Scenario], seeds: list[int]
) -> tuple[float, float, dict[str, float]]:
    """``(mean reward, mean SLO-violation share, {scenario: mean reward})`` of policy ``name`` with ``params`` on
    every scenario over ``seeds`` (one batch per scenario). Bad params raise PolicyConfigError."""
    from scaling_env.rollout import rollout

    cls = POLICIES[name]
    checked = validate_params(cls.Params, params, f"policy {name}: params")
    per_scenario, slo = {}, []
    for sc in scenarios:
        run = rollout(sc.config, cls(sc.config, checked), seeds, parallel=False)
        per_scenario[sc.name] = float(np.mean([m["reward"] for m in run.metrics]))
        slo.append(float(np.mean([m["slo_violation_share"] for m in run.metrics])))
    return float(np.mean(list(per_scenario.values()))), float(np.mean(slo)), per_scenario


# ------------------------------------------------------------------------------------------ studies
def default_storage(out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(out / 'studies.db').resolve()}"


_STORAGES: dict[str, Any] = {}


def open_storage(url: str) -> Any:
    """The Optuna storage of ``url``, one per URL and process. A SQLite file is opened in WAL mode with
    ``synchronous=NORMAL``: a commit then costs no fsync (about 10 ms each on this machine, and a trial makes about
    20), a killed process loses no committed trial, and readers (``optuna-dashboard``) do not block the
    writer; only a power cut can lose the last commits (SQLite docs, "Write-Ahead Logging"). Only the tuning
    process writes the storage (workers evaluate trials, see :func:`run_studies`), so a SQLite file on the head
    node serves a cluster too."""
    if not url.startswith("sqlite:///"):
        return url
    if url not in _STORAGES:
        from sqlalchemy import event

        # a reader (optuna-dashboard, a second process) may hold the file while this one switches it to WAL or
        # writes: wait for it up to 60 s (sqlite3's default is 5 s, which a loaded machine can exceed, and the
        # command then failed with "database is locked")
        storage = _tagging_storage_class()(url, engine_kwargs={"connect_args": {"timeout": 60.0}})

        def pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        event.listen(storage.engine, "connect", pragmas)
        storage.engine.dispose()  # connections made before the listener are closed; new ones get the pragmas
        _STORAGES[url] = storage
    return _STORAGES[url]


def _tagging_storage_class() -> type:
    """An RDBStorage whose new trials carry this host and process from the transaction that creates them: tagged in
    a second commit (as the sampler's ``before_trial`` does), a process killed between the two left a RUNNING trial
    that no resume could recognise as abandoned (``test_tune_kill_resume_and_load`` failed on it under load)."""
    import datetime

    import optuna
    from optuna.trial import FrozenTrial, TrialState

    class TaggingRDBStorage(optuna.storages.RDBStorage):
        def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
            if template_trial is None:  # a trial study.ask() creates (not an enqueued one): RUNNING, tagged
                template_trial = FrozenTrial(
                    number=0,
                    state=TrialState.RUNNING,
                    value=None,
                    datetime_start=datetime.datetime.now(),
                    datetime_complete=None,
                    params={},
                    distributions={},
                    user_attrs={"host": socket.gethostname(), "pid": os.getpid()},
                    system_attrs={},
                    intermediate_values={},
                    trial_id=0,
                )
            return super()._create_new_trial(study_id, template_trial)  # no public API for this

    return TaggingRDBStorage


def code_version() -> str:
    """``git describe`` of the checkout (``-dirty`` if it has uncommitted changes), else the package version."""
    if not (REPO_ROOT / ".git").exists():  # an installed package: not the checkout's git history
        return _package_version()
    try:
        res = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if res.returncode == 0 and res.stdout.strip():
            return "git " + res.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return _package_version()


def _package_version() -> str:
    from scaling_env.resources import package_version

    return "scaling-env " + package_version()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_abandoned_trials(study: Any) -> int:
    """Mark failed the trials left RUNNING by a killed process of this machine (their pid is gone); returns how
    many. Trials of live processes (another worker sharing the study) are left alone."""
    from optuna.trial import TrialState

    host, n = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and isinstance(pid, int) and not _pid_alive(pid):
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)  # no public API for this
            n += 1
    return n


def default_value(pf: PolicyFile, path: str) -> Any:
    """The value the shipped file plays at ``path`` (the first trial): as written in its params, or the policy's
    default where the params leave the parameter out (a search space may tune a parameter the params omit)."""
    try:
        return get_path(pf.params, path)
    except KeyError:
        full = validate_params(POLICIES[pf.name].Params, pf.params, str(pf.path)).model_dump(mode="json")
        try:
            return get_path(full, path)
        except KeyError:
            raise TuneError(f"{pf.path}: search_space.{path}: no such parameter in params") from None


def study_attrs(target: Target, pf: PolicyFile, seeds: list[int], slo_limit: float | None) -> dict[str, Any]:
    """What defines a study: a study continued with other values would mix two objectives."""
    return {
        "policy": target.policy,
        "scenarios": [Path(s).stem for s in target.scenarios],
        "generalist": target.generalist,
        "seeds": format_seeds(seeds),
        "slo_limit": slo_limit,
        "base_params": json.loads(json.dumps(pf.params)),
        "search_space": {k: v.model_dump(by_alias=True, exclude_defaults=True) for k, v in pf.search_space.items()},
    }


def _sampler(constant_liar: bool = False) -> Any:
    """TPE with a fixed seed, which tags each trial with this host and process as soon as the trial exists (before
    any sampling), so that a trial left running by a killed process can be recognised on resume."""
    import optuna

    class TaggingTPESampler(optuna.samplers.TPESampler):
        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            study._storage.set_trial_user_attr(trial._trial_id, "host", socket.gethostname())  # no public API
            study._storage.set_trial_user_attr(trial._trial_id, "pid", os.getpid())
            super().before_trial(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: trials still running (a batch) count as bad, so a batch spreads out; no effect at batch 1
        return TaggingTPESampler(seed=SAMPLER_SEED, multivariate=True, constant_liar=constant_liar)


def open_study(
    target: Target,
    pf: PolicyFile,
    seeds: list[int],
    storage: str,
    slo_limit: float | None,
    constant_liar: bool = False,
) -> Any:
    """Create the target's study or load it, refusing one made with other seeds, scenarios or search space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=target.study_name,
        storage=open_storage(storage),
        direction="maximize",
        sampler=_sampler(constant_liar),
        load_if_exists=True,
    )
    want = study_attrs(target, pf, seeds, slo_limit)
    have = study.user_attrs
    if not have:
        for k, v in want.items():
            study.set_user_attr(k, v)
    else:
        for k, v in want.items():
            if have.get(k) != v:
                raise TuneError(
                    f"study {target.study_name!r} in {storage} was made with {k} = {have.get(k)!r}, "
                    f"this run has {v!r}: give another --storage or --out, or delete the study "
                    f"(optuna delete-study --study-name {target.study_name} --storage {storage})"
                )
    return study


@dataclass(frozen=True)
class TrialJob:
    """One trial's evaluation, as sent to a worker: pure data, so that any backend gives the same numbers."""

    policy: str
    params: dict[str, Any]
    scenarios: tuple[str, ...]  # absolute scenario YAML paths
    seeds: tuple[int, ...]
    traces_dir: str | None


_SCENARIO_CACHE: dict[tuple[tuple[str, ...], str | None], list[Scenario]] = {}


def evaluate_trial(job: TrialJob) -> tuple[float, float, dict[str, float]] | str:
    """A worker's job: :func:`evaluate` of the trial's params, or the message of a PolicyConfigError (a
    combination the policy refuses). The scenarios are loaded once per worker process."""
    key = (job.scenarios, job.traces_dir)
    if key not in _SCENARIO_CACHE:
        scenarios, skipped = load_scenarios(list(job.scenarios), job.traces_dir)
        if skipped:
            raise TuneError("; ".join(skipped))
        _SCENARIO_CACHE[key] = scenarios
    try:
        return evaluate(job.policy, job.params, _SCENARIO_CACHE[key], list(job.seeds))
    except PolicyConfigError as exc:
        return str(exc)


class StudyRun:
    """A study being run by :func:`run_studies`: the trials it still needs, asked a batch at a time."""

    def __init__(
        self,
        target: Target,
        seeds: list[int],
        trials: int,
        storage: str,
        slo_limit: float | None,
        traces_dir: str | None,
        batch: int,
    ) -> None:
        from optuna.trial import TrialState

        self.target, self.seeds, self.trials, self.storage, self.slo_limit = target, seeds, trials, storage, slo_limit
        self.pf = policy_file(target.policy)
        scenarios, skipped = load_scenarios(list(target.scenarios), traces_dir)
        if skipped:
            raise TuneError("; ".join(skipped))
        self.scenario_paths = tuple(str(Path(sc.path).resolve()) for sc in scenarios)  # a worker has its own cwd
        self.traces_dir = str(Path(traces_dir).resolve()) if traces_dir else None
        self.study = open_study(target, self.pf, seeds, storage, slo_limit, constant_liar=batch > 1)
        self.abandoned = _fail_abandoned_trials(self.study)
        self.states = (TrialState.COMPLETE, TrialState.PRUNED)
        default_values = {path: default_value(self.pf, path) for path in self.pf.search_space}
        done = self.study.get_trials(deepcopy=False)
        has_default = any(
            t.user_attrs.get("default") and t.state in (*self.states, TrialState.WAITING, TrialState.RUNNING)
            for t in done
        )
        if not has_default:
            self.study.enqueue_trial(default_values, user_attrs={"default": True})
        self.finished_before = self.finished()
        self.failed = 0  # trials whose worker died or raised in this run
        self.error: str | None = None
        self.batch = batch
        self.t0 = time.perf_counter()
        if self.finished_before < trials:
            # the code versions that ran the study's trials (a resumed study may span several)
            versions, version = list(self.study.user_attrs.get("code_versions", [])), code_version()
            if version not in versions:
                self.study.set_user_attr("code_versions", [*versions, version])

    def finished(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=self.states))

    def needed(self) -> int:
        return 0 if self.error else max(0, self.trials - self.finished())

    def ask(self, n: int) -> list[tuple[Any, TrialJob | None]]:
        """Up to ``n`` new trials with their jobs (None: params the policy refuses, already told PRUNED)."""
        asked = []
        for _ in range(n):
            trial = self.study.ask()
            values = {path: dim.suggest(trial, path) for path, dim in self.pf.search_space.items()}
            try:
                params = apply_values(self.pf.params, values)
            except PolicyConfigError as exc:
                self.refuse(trial, str(exc))
                asked.append((trial, None))
                continue
            job = TrialJob(self.target.policy, params, self.scenario_paths, tuple(self.seeds), self.traces_dir)
            asked.append((trial, job))
        return asked

    def refuse(self, trial: Any, message: str) -> None:
        """A combination the policy refuses: PRUNED, so that TPE learns to avoid it (as a TrialPruned would)."""
        from optuna.trial import TrialState

        trial.set_user_attr("invalid", message)
        self.study.tell(trial, state=TrialState.PRUNED)

    def tell(self, trial: Any, result: Any) -> None:
        from optuna.trial import TrialState

        if isinstance(result, Failure):  # the worker died or the job raised: only this trial is lost
            trial.set_user_attr("error", result.message)
            self.study.tell(trial, state=TrialState.FAIL)
            self.failed += 1
            if "retry_of" not in trial.user_attrs:  # its point is tried once more (as the next trial asked)
                attrs = {k: v for k, v in trial.user_attrs.items() if k == "default"}
                self.study.enqueue_trial(trial.params, user_attrs={**attrs, "retry_of": trial.number})
            if self.failed > max(3, self.trials):
                self.error = f"{self.failed} trials failed, the last: {result.message}"
            return
        if isinstance(result, str):
            self.refuse(trial, result)
            return
        reward, slo, per_scenario = result
        trial.set_user_attr("slo_share", slo)
        trial.set_user_attr("per_scenario", per_scenario)
        if self.slo_limit is not None:  # feasible when <= 0: TPE ranks infeasible trials below every feasible one
            trial.set_constraint("slo_share", slo - self.slo_limit)
        self.study.tell(trial, reward)

    def result(self) -> dict[str, Any]:
        seconds = time.perf_counter() - self.t0
        res = summarise_study(
            self.target,
            self.study,
            self.pf,
            self.seeds,
            self.slo_limit,
            self.storage,
            seconds,
            self.finished_before,
            self.abandoned,
        )
        res["batch"] = self.batch
        return res


def run_studies(
    runs: list[StudyRun],
    executor: Executor,
    batch: int = 1,
    on_round: Any = None,
    job_fn: Any = evaluate_trial,
) -> None:
    """Run the studies to their trial counts in rounds: each round asks every unfinished study for ``batch``
    trials (sampled here, in a fixed order), evaluates them all on ``executor``, and tells the results in the same
    order. So a study's trials depend on ``batch`` but not on the backend or the number of workers; ``batch=1`` is
    sequential TPE. A trial whose worker dies (after Ray's retries) is marked FAIL and another is asked."""
    while True:
        active = [r for r in runs if r.needed()]
        if not active:
            return
        asked = [(r, trial, job) for r in active for trial, job in r.ask(min(batch, r.needed()))]
        todo = [(r, trial, job) for r, trial, job in asked if job is not None]
        results = run_all(executor, job_fn, [job for _, _, job in todo], failures="return")
        for (r, trial, _), res in zip(todo, results):
            r.tell(trial, res)
        if on_round is not None:
            on_round()


def run_study(
    target: Target,
    seeds: list[int],
    trials: int,
    storage: str,
    slo_limit: float | None,
    traces_dir: str | None = None,
    executor: Executor | None = None,
    batch: int = 1,
) -> dict[str, Any]:
    """Run the target's study up to ``trials`` finished trials (continuing a stored one); returns its result:
    the best setting's params, value, SLO share, and the study's counts."""
    run = StudyRun(target, seeds, trials, storage, slo_limit, traces_dir, batch)
    with executor or Executor(1) as ex:
        run_studies([run], ex, batch)
    if run.error:
        raise TuneError(f"{target.study_name}: {run.error}")
    return run.result()


def best_trial(study: Any, slo_limit: float | None) -> Any:
    """The completed trial with the highest value (meeting the SLO limit, if any); the earliest on a tie."""
    from optuna.trial import TrialState

    ok = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if slo_limit is None or t.user_attrs.get("slo_share", 1.0) <= slo_limit
    ]
    if not ok:
        return None
    return max(ok, key=lambda t: (t.value, -t.number))


def summarise_study(
    target: Target,
    study: Any,
    pf: PolicyFile,
    seeds: list[int],
    slo_limit: float | None,
    storage: str,
    seconds: float,
    finished_before: int,
    abandoned: int,
) -> dict[str, Any]:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    default = next((t for t in complete if t.user_attrs.get("default")), None)
    best = best_trial(study, slo_limit)
    res: dict[str, Any] = {
        "target": target,
        "study": target.study_name,
        "storage": storage,
        "finished": len(finished),
        "finished_before": finished_before,
        "abandoned": abandoned,
        "seconds": seconds,
        "default_value": default.value if default else None,
        "default_slo": default.user_attrs.get("slo_share") if default else None,
        "best": None,
    }
    if best is not None:
        values = {path: best.params[path] for path in pf.search_space}
        last = max((t.datetime_complete for t in finished if t.datetime_complete), default=None)
        res["best"] = {
            "number": best.number,
            "value": best.value,
            "slo_share": best.user_attrs.get("slo_share"),
            "per_scenario": best.user_attrs.get("per_scenario", {}),
            "params": apply_values(pf.params, values),
            "date": (last or dt.datetime.now()).replace(microsecond=0).isoformat(),
        }
    res["seeds"] = format_seeds(seeds)
    res["slo_limit"] = slo_limit
    res["code_versions"] = list(study.user_attrs.get("code_versions", []))
    return res


# ------------------------------------------------------------------------------------------ result files
def _plain(value: Any) -> Any:
    """YAML-friendly copy: numpy scalars and tuples to Python values and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def result_document(res: dict[str, Any], version: str) -> dict[str, Any]:
    target: Target = res["target"]
    best = res["best"]
    slo = res["slo_limit"]
    return _plain(
        {
            "policy": target.policy,
            "params": best["params"],
            "provenance": {
                "tool": "scaling-env tune",
                "study": res["study"],
                "mode": "generalist" if target.generalist else "per scenario",
                "scenarios": [Path(s).stem for s in target.scenarios],
                "seeds": res["seeds"],
                "trials": res["finished"],
                "objective": "mean episode reward over the tuning seeds"
                + (" and scenarios" if target.generalist else "")
                + (f", subject to mean SLO-violation share <= {slo:g}" if slo is not None else ""),
                "sampler": f"optuna TPESampler(seed={SAMPLER_SEED}, multivariate=True), default enqueued first"
                + (
                    f"; {res['batch']} trials sampled per round (constant_liar=True)" if res.get("batch", 1) > 1 else ""
                ),
                "value": round(best["value"], 4),
                "slo_share": round(best["slo_share"], 5) if best["slo_share"] is not None else None,
                "default_value": round(res["default_value"], 4) if res["default_value"] is not None else None,
                "per_scenario": {k: round(v, 4) for k, v in best["per_scenario"].items()},
                "best_trial": best["number"],
                "date": best["date"],
                "code_version": ", ".join(res.get("code_versions") or [version]),
            },
        }
    )


def write_result(res: dict[str, Any], out: Path, version: str, force: bool = False) -> Path:
    """Write the result as a policy file; refuse to replace a file the tuner did not write (no provenance)
    unless ``force``. The file is checked by loading it back."""
    target: Target = res["target"]
    path = target.out_path(out)
    if path.exists() and not force:
        try:
            existing = load_policy_file(path)
        except ConfigError:
            existing = None
        if existing is None or existing.provenance.get("tool") != "scaling-env tune":
            raise TuneError(f"{path} exists and was not written by scaling-env tune: not replacing it (use --force)")
    doc = result_document(res, version)
    header = (
        f"# {target.policy} tuned {'over ' + ', '.join(doc['provenance']['scenarios']) if target.generalist else 'on '}"
        f"{'' if target.generalist else target.label} by `scaling-env tune` (agents/experiments/tune.py).\n"
        "# Written by the tuner: regenerate rather than edit (see docs/benchmark.md, 'Tuned baselines').\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".yaml.tmp{os.getpid()}")
    tmp.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=110))
    try:
        load_policy_file(tmp)  # the file must load as a policy (raises naming the field otherwise)
        validate_params(POLICIES[target.policy].Params, doc["params"], str(tmp))
    except ConfigError:
        tmp.unlink()
        raise
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------ the command
def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def plan_targets(policies: list[str], scenarios: list[str], generalist: bool, per_scenario: bool) -> list[Target]:
    targets = []
    for p in policies:
        if per_scenario:
            targets += [Target(p, (s,), False) for s in scenarios]
        if generalist:
            targets.append(Target(p, tuple(scenarios), True))
    return targets


def results_table(results: list[dict[str, Any]], paths: dict[str, Path | None]) -> Table:
    table = Table(title="Tuned settings (objective: mean episode reward on the tuning seeds; higher is better)")
    for col, justify in (
        ("policy", "left"),
        ("scenario", "left"),
        ("trials", "right"),
        ("default", "right"),
        ("tuned", "right"),
        ("SLO viol.", "right"),
        ("file", "left"),
    ):
        table.add_column(col, justify=justify)
    for r in results:
        t: Target = r["target"]
        best = r["best"]
        table.add_row(
            t.policy,
            t.label,
            str(r["finished"]),
            "-" if r["default_value"] is None else f"{r['default_value']:.1f}",
            "-" if best is None else f"{best['value']:.1f}",
            "-" if best is None or best["slo_share"] is None else f"{best['slo_share']:.1%}",
            str(paths.get(t.study_name) or "not written (no trial met the SLO limit)"),
        )
    return table


def tune_command(
    policy: Annotated[
        Optional[list[str]],
        typer.Option("--policy", "-p", help="policy to tune (comma-separated or repeated); see --all"),
    ] = None,
    scenarios: Annotated[
        Optional[list[str]],
        typer.Option(
            "--scenarios",
            "-s",
            help="scenario names or YAML paths (comma-separated or repeated); default: "
            + ",".join(EVALUATION_SCENARIOS),
        ),
    ] = None,
    trials: Annotated[
        int, typer.Option(min=1, help="finished trials per study (those of a resumed study count)")
    ] = DEFAULT_TRIALS,
    seeds: Annotated[
        str, typer.Option(help="tuning seeds, e.g. 0-19 or 0-9,20-29 (never the benchmark's, 1000 and up)")
    ] = DEFAULT_SEEDS,
    storage: Annotated[
        Optional[str], typer.Option(help="Optuna storage URL (default: sqlite:///<out>/studies.db)")
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(help=f"output folder of the YAML files and the default storage (default: {DEFAULT_OUT})"),
    ] = None,
    slo_limit: Annotated[
        Optional[float],
        typer.Option(min=0.0, max=1.0, help="constraint: mean SLO-violation share at most this (e.g. 0.05)"),
    ] = None,
    generalist: Annotated[
        bool, typer.Option("--generalist", help="one setting for all the scenarios instead of one per scenario")
    ] = False,
    all_: Annotated[
        bool,
        typer.Option(
            "--all",
            help="every tunable policy on every evaluation scenario, per scenario and generalist, written to "
            f"the shipped configs/policies/tuned (studies in {DEFAULT_OUT}/studies.db) unless --out is given",
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="trials evaluated at once (local processes or Ray tasks; see --batch)")
    ] = 1,
    batch: Annotated[
        int,
        typer.Option(
            min=1,
            help="trials each study samples per round (1: sequential TPE, today's numbers); the studies' trials of "
            "a round run in parallel; the results depend on --batch, never on --workers or --backend",
        ),
    ] = 1,
    backend: Annotated[str, typer.Option(help="where trials run: local (processes) or ray")] = "local",
    address: Annotated[
        Optional[str], typer.Option(help="Ray cluster address (with --backend ray; default: start a local Ray)")
    ] = None,
    force: Annotated[bool, typer.Option(help="replace result files not written by the tuner")] = False,
    traces_dir: Annotated[Optional[Path], typer.Option(help="folder of trace CSVs")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Tune rule policies' parameters with Optuna (TPE) on tuning seeds; write each result as a policy file."""
    seed_list, policy_list, scenario_list, out_dir, store = _command_inputs(
        policy, scenarios, seeds, storage, out, all_, traces_dir
    )
    targets = plan_targets(policy_list, scenario_list, generalist or all_, not generalist or all_)
    version = code_version()
    tdir = str(traces_dir) if traces_dir else None
    console.print(
        f"tuning {len(targets)} stud{'y' if len(targets) == 1 else 'ies'} to {trials} trials on seeds "
        f"{format_seeds(seed_list)}; storage {store}",
        soft_wrap=True,
    )
    try:  # create the storage and every study here: a bad storage URL is a clear error before any work
        for target in targets:
            open_study(target, policy_file(target.policy), seed_list, store, slo_limit)
    except (TuneError, ConfigError) as exc:
        fail(str(exc))
    except Exception as exc:  # e.g. sqlalchemy.exc.ArgumentError, OperationalError
        fail(f"--storage {store}: cannot open it ({type(exc).__name__}: {exc})")
    try:
        executor = make_executor(backend, workers, address)
    except ExecutionError as exc:
        fail(str(exc))
    t0 = time.perf_counter()
    results, errors, failed_trials = _run_with_progress(
        targets, seed_list, trials, store, slo_limit, tdir, batch, executor, progress
    )
    seconds = time.perf_counter() - t0
    paths: dict[str, Path | None] = {}
    try:
        for res in results:
            paths[res["study"]] = write_result(res, out_dir, version, force) if res["best"] else None
    except (TuneError, ConfigError) as exc:
        fail(str(exc))
    _report(results, paths, errors, failed_trials, seconds, slo_limit)


def _command_inputs(
    policy: list[str] | None,
    scenarios: list[str] | None,
    seeds: str,
    storage: str | None,
    out: Path | None,
    all_: bool,
    traces_dir: Path | None,
) -> tuple[list[int], list[str], list[str], Path, str]:
    """The command's seeds, policies, scenarios, output folder and storage URL, checked (a message, exit 2)."""
    try:
        seed_list = parse_seeds(seeds)
        check_tuning_seeds(seed_list)
        if all_:
            policy_list = _split(policy) or tunable_policies()
            scenario_list = _split(scenarios) or list(EVALUATION_SCENARIOS)
            out_dir = out or TUNED_DIR
            store = storage or default_storage(DEFAULT_OUT if out is None else out_dir)
        else:
            policy_list = _split(policy)
            if not policy_list:
                fail("give --policy NAME (or --all); tunable: " + ", ".join(tunable_policies()))
            scenario_list = _split(scenarios) or list(EVALUATION_SCENARIOS)
            out_dir = out or DEFAULT_OUT
            store = storage or default_storage(out_dir)
        for p in policy_list:
            policy_file(p)
        _, skipped = load_scenarios(scenario_list, str(traces_dir) if traces_dir else None)
        if skipped:
            fail("; ".join(skipped))
    except (TuneError, ConfigError, TraceError) as exc:
        fail(str(exc))
    return seed_list, policy_list, scenario_list, out_dir, store


def _run_with_progress(
    targets: list[Any],
    seed_list: list[int],
    trials: int,
    store: str,
    slo_limit: float | None,
    tdir: str | None,
    batch: int,
    executor: Any,
    progress: bool,
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Run every study to ``trials`` finished trials with a progress bar each; (results, errors, failed trials)."""
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    with task_bar(disable=not progress, console=console) as bar:
        runs: list[StudyRun] = []
        tasks: list[Any] = []
        for target in targets:
            try:
                runs.append(StudyRun(target, seed_list, trials, store, slo_limit, tdir, batch))
                tasks.append(bar.add_task(target.study_name, total=trials))
            except (TuneError, ConfigError) as exc:  # one failed study does not stop the others
                errors.append(f"{target.study_name}: {exc}")

        def on_round() -> None:
            for run, task in zip(runs, tasks):
                best = best_trial(run.study, slo_limit)
                best_text = f" best {best.value:.1f}" if best is not None else ""
                bar.update(
                    task, completed=min(run.finished(), trials), description=f"{run.target.study_name}{best_text}"
                )

        with executor:
            run_studies(runs, executor, batch, on_round if progress else None)  # the bars read every study
        for run in runs:
            if run.error:
                errors.append(f"{run.target.study_name}: {run.error}")
            else:
                results.append(run.result())
        failed_trials = sum(run.failed for run in runs)
    return results, errors, failed_trials


def _report(
    results: list[dict[str, Any]],
    paths: dict[str, Path | None],
    errors: list[str],
    failed_trials: int,
    seconds: float,
    slo_limit: float | None,
) -> None:
    """The results table and the closing lines; exit 1 if a study failed or met no --slo-limit."""
    console.print(results_table(results, paths))
    abandoned = sum(r["abandoned"] for r in results)
    note = f"; {abandoned} trial(s) left running by a killed run marked failed" if abandoned else ""
    if failed_trials:
        note += f"; {failed_trials} trial(s) failed (worker died or raised) and were replaced"
    console.print(f"{len(results)} studies in {seconds:.1f} s{note}", soft_wrap=True)
    for r in results:
        if r["best"] is None:
            console.print(
                f"{r['study']}: no trial met --slo-limit {slo_limit:g}; nothing written", style="red", soft_wrap=True
            )
    for e in errors:
        console.print(f"failed: {e} (run the command again to continue)", style="red", soft_wrap=True)
    if errors or any(r["best"] is None for r in results):
        raise typer.Exit(1)


def main() -> None:
    """``python -m`` runs ``scaling-env tune`` (the command line lives in ``agents/experiments/cli.py``)."""
    import sys

    from .cli import app

    app(["tune", *sys.argv[1:]])


if __name__ == "__main__":
    main()
