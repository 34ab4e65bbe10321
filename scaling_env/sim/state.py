"""Layout of the simulation state: the named columns of its tables and the records the step kernel takes.

Every table of B clusters is a numpy array whose last axis has named columns. Each column table below is built
from one tuple of ``(name, meaning)``; the module constants (``P_DT``, ``E_TIME``, ...) are its column indices,
checked against the names at import (:func:`check_columns`), so a column is added in one tuple and one constant.

The kernel takes the state as two records (numba compiles a namedtuple of arrays like a struct):

- :data:`State`: ``params`` (B, N_PARAMS), ``env_state`` (B, N_ENV_STATE), ``inst_f``/``inst_i`` (B, slots,
  columns of ``instances``), ``rng`` (B,) uint64, ``expected`` (rows, steps) arrival means (one row shared by
  all clusters when every episode has the same rates, else row b for cluster b), ``outages`` (B, n, 2),
  ``scale_steps`` (n_actions,);
- :data:`Outputs`: ``obs``, ``metrics`` (columns of ``fields.INFO_FIELDS``), ``rewards``, ``reward_parts``
  (columns of ``fields.REWARD_COMPONENTS``), ``truncated``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..fields import REWARD_NAMES


def check_columns(prefix: str, names: tuple[str, ...], namespace: Mapping[str, Any]) -> int:
    """Check that ``namespace[prefix + NAME]`` is the column index of every ``name`` (NAME = name.upper()), so
    the constants cannot drift from the tuple of names; returns the number of columns."""
    for i, name in enumerate(names):
        const = prefix + name.upper()
        if namespace.get(const) != i:
            raise ImportError(f"{const} is {namespace.get(const)!r}, but {name!r} is column {i} of its table")
    return len(names)


# ---- per-cluster parameters: params[b, :] (config_params fills them from a name -> value mapping)
PARAM_FIELDS: tuple[tuple[str, str], ...] = (
    ("dt", "decision interval (step), s"),
    ("min", "scaling.min_instances"),
    ("max", "scaling.max_instances"),
    ("conc", "requests one instance serves at once"),
    ("maxq", "waiting room per instance, requests"),
    ("svc", "mean service time, s"),
    ("svc_cv", "coefficient of variation of the service time"),
    ("boot_mean", "mean cold start, s"),
    ("boot_jitter", "cold start spread: mean * U(1 - jitter, 1 + jitter)"),
    ("mem_limit", "memory limit of an instance, MB"),
    ("mem_base", "memory of an idle instance, MB"),
    ("mem_req", "memory per request in service or queued, MB"),
    ("dereg", "deregistration delay: longest drain, s"),
    ("cd_out", "scale-out cooldown, s"),
    ("cd_in", "scale-in cooldown, s"),
    ("algo", "balancing algorithm: index in load_balancer.ALGORITHMS"),
    ("hc_interval", "health check interval, s"),
    ("hc_threshold", "failed checks that take an instance out"),
    ("hazard", "probability that a warm instance crashes in a step"),
    ("mem_crash", "1: an instance over its memory limit crashes"),
    ("replace", "1: unhealthy instances are replaced"),
    ("termination", "seconds an unhealthy instance is billed while it terminates"),
    ("price_inst_s", "USD per instance-second"),
    ("price_req", "USD per request"),
    ("slo", "p95 latency objective, s"),
    ("slo_lost", "largest share of a step's requests that may be lost without an SLO violation"),
    ("poisson", "1: Poisson arrivals, 0: deterministic"),
    ("day", "seconds of one day of the clock"),
    ("episode_steps", "steps per episode"),
    ("ref_cost", "cost of max_instances at full concurrency for a step (scale of the cost term)"),
    ("max_step", "max |scale_steps| (scale of the scaling term)"),
    ("max_rps", "capacity of max_instances, requests/s (scale of the rate observation)"),
    ("clock0", "clock at the episode start, s (set per episode)"),
    # serverless platform mode (issue 17; config.PlatformConfig)
    ("platform", "1: request-driven platform mode (sim/platform.py), 0: the pool the policy scales"),
    ("pf_limit", "most instances at once (platform.max_concurrency)"),
    ("pf_rate", "new instances the scaling rate allows per second"),
    ("pf_burst", "size of the scaling rate's token bucket, instances"),
    ("pf_keep_alive", "keep-alive at reset, s"),
    ("pf_price_prov_s", "USD per provisioned instance-second"),
    ("pf_price_prov_busy_s", "USD per busy second of a provisioned instance (duration price)"),
    ("pf_control", "0: the action changes the provisioned count, 1: the keep-alive"),
    ("pf_ka_step", "keep-alive change per unit of scale_steps, s"),
    ("pf_ka_max", "largest keep-alive, s"),
    ("pf_activator", "1: requests with no capacity are buffered by the activator, not throttled"),
    ("pf_buffer", "activator capacity, requests"),
    ("pf_initial_prov", "provisioned instances at reset"),
)
(
    P_DT,
    P_MIN,
    P_MAX,
    P_CONC,
    P_MAXQ,
    P_SVC,
    P_SVC_CV,
    P_BOOT_MEAN,
    P_BOOT_JITTER,
    P_MEM_LIMIT,
    P_MEM_BASE,
    P_MEM_REQ,
    P_DEREG,
    P_CD_OUT,
    P_CD_IN,
    P_ALGO,
    P_HC_INTERVAL,
    P_HC_THRESHOLD,
    P_HAZARD,
    P_MEM_CRASH,
    P_REPLACE,
    P_TERMINATION,
    P_PRICE_INST_S,
    P_PRICE_REQ,
    P_SLO,
    P_SLO_LOST,
    P_POISSON,
    P_DAY,
    P_EPISODE_STEPS,
    P_REF_COST,
    P_MAX_STEP,
    P_MAX_RPS,
    P_CLOCK0,
    P_PLATFORM,
    P_PF_LIMIT,
    P_PF_RATE,
    P_PF_BURST,
    P_PF_KEEP_ALIVE,
    P_PF_PRICE_PROV_S,
    P_PF_PRICE_PROV_BUSY_S,
    P_PF_CONTROL,
    P_PF_KA_STEP,
    P_PF_KA_MAX,
    P_PF_ACTIVATOR,
    P_PF_BUFFER,
    P_PF_INITIAL_PROV,
) = range(len(PARAM_FIELDS))
check_columns("P_", tuple(f[0] for f in PARAM_FIELDS), globals())
# the reward weights follow, one column per reward term in the order of fields.REWARD_NAMES: term j's weight is
# params[b, P_WEIGHTS + j] (a new reward term needs no new column here)
P_WEIGHTS = len(PARAM_FIELDS)
PARAM_NAMES: tuple[str, ...] = tuple(f[0] for f in PARAM_FIELDS) + tuple("weight_" + r for r in REWARD_NAMES)
N_PARAMS = len(PARAM_NAMES)

# ---- per-cluster state: env_state[b, :]
ENV_STATE_FIELDS: tuple[tuple[str, str], ...] = (
    ("time", "simulated seconds since the episode start"),
    ("step", "decision steps taken in the episode"),
    ("cd_out", "seconds left of the scale-out cooldown"),
    ("cd_in", "seconds left of the scale-in cooldown"),
    ("rr", "round-robin pointer of the load balancer"),
    ("hi", "1 + the highest slot in use (loops over slots stop there)"),
    ("carry", "deterministic arrivals: the fraction of a request carried to the next step"),
    # serverless platform mode (issue 17)
    ("pf_prov", "provisioned instances configured (the count the action changes)"),
    ("pf_tokens", "new instances the scaling rate allows now (token bucket)"),
    ("pf_keep_alive", "keep-alive in force, s"),
    ("pf_buffer", "requests held by the activator"),
    ("pf_buffer_age", "total time the activator's requests have waited so far, request-s"),
    ("psffa", "requests in system of the balancer's stationary queue, carried over steps (sim/nonstationary.py)"),
    ("psffa_n", "pool members in the last step that followed that queue"),
)
(
    E_TIME,
    E_STEP,
    E_CD_OUT,
    E_CD_IN,
    E_RR,
    E_HI,
    E_CARRY,
    E_PF_PROV,
    E_PF_TOKENS,
    E_PF_KEEP_ALIVE,
    E_PF_BUFFER,
    E_PF_BUFFER_AGE,
    E_PSFFA,
    E_PSFFA_N,
) = range(len(ENV_STATE_FIELDS))
N_ENV_STATE = check_columns("E_", tuple(f[0] for f in ENV_STATE_FIELDS), globals())

# ``State.expected`` holds ARRIVAL_PARTS rows of ``episode_steps`` columns per cluster, side by side: each step's
# expected arrivals, the time of the rate change inside it (s from its start, 0: none) and the part of its
# arrivals before that (``workload.EpisodeWorkload.rate_splits``; the kernel's ``draw_arrivals``)
ARRIVAL_PARTS = 3

State = namedtuple("State", "params env_state inst_f inst_i rng expected outages scale_steps")
Outputs = namedtuple("Outputs", "obs metrics rewards reward_parts truncated")


def param_row(values: Mapping[str, float]) -> np.ndarray:
    """The parameter row of one cluster from a mapping of every name of ``PARAM_NAMES`` to its value."""
    missing = [n for n in PARAM_NAMES if n not in values]
    unknown = [n for n in values if n not in PARAM_NAMES]
    if missing or unknown:
        raise KeyError(f"parameter row: missing {missing}, unknown {unknown}")
    return np.array([float(values[n]) for n in PARAM_NAMES])
