"""A redundancy floor for a gate's expert: a rule that, once it asks for ``from`` instances or more, is given at least
the fleet in which one crashed instance cannot by itself violate the SLO.

Why: the env counts a step as an SLO violation when more than ``reward.slo_max_lost_share`` (5 %) of its requests
are lost, and a load balancer keeps sending a crashed instance its share of the requests until its health checks
find it (``load_balancer.health_check_interval_seconds`` x ``unhealthy_threshold``). In a fleet of N instances that
share is 1/N, so below 21 instances every crash is a violation for the steps until detection, whatever the fleet's
capacity; from 21 on (1/21 = 4.8 %) it is not. On seeds 900-999 of diurnal and cold_start_heavy every SLO violation
of ``predictive@generalist`` was such a step (docs/results.md, rl38): its share is set by how many instance-steps it
spends below 21, and a cheaper rule, smaller in the ramps, spends more. A floor from ``from`` instances lifts the
fleet over 21 as soon as the load asks for ``from``, which keeps the cheap rule's count on the plateau.

As an expert spec: ``"<rule spec> with redundancy from <n>"``, e.g.
``"configs/policies/tuned/cold_start_heavy/hpa.yaml with redundancy from 11"`` (residual.py's ``make_rule``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from scaling_env.config import ConfigError, EnvConfig

from ..actions import action_for_target, controlled_count, counts_reached
from .residual import accept_counts

SUFFIX = re.compile(r"^(?P<rule>.+?) with redundancy from (?P<n>\S+)$")


def redundant_count(config: EnvConfig) -> int:
    """The smallest fleet in which one instance's share of the requests (1/N) is below the SLO's lost share."""
    share = config.reward.slo_max_lost_share
    if share <= 0.0:
        raise ConfigError(
            "a redundancy floor needs reward.slo_max_lost_share > 0 (with 0, any lost request violates the SLO)"
        )
    return math.floor(1.0 / share) + 1


def split_spec(spec: str) -> tuple[str, int | None]:
    """(the rule's spec, the floor's ``from`` or None) of an expert spec (module docstring); ConfigError naming
    the spec when its ``from`` is not a whole number of at least 1."""
    m = SUFFIX.match(spec)
    if m is None:
        return spec, None
    n = m.group("n")
    if not n.isdigit() or int(n) < 1:
        raise ConfigError(f"expert {spec!r}: 'with redundancy from' needs a whole number of instances >= 1, got {n!r}")
    return m.group("rule"), int(n)


class RedundancyFloor:
    """``rule`` with the floor: where the count its action reaches is at least ``start`` and below
    :func:`redundant_count` (clipped to ``scaling.max_instances``), the action asks for that count instead
    (rounded up to a step that reaches it). Its ``desired`` and ``rounded_from`` are the rule's, so a gate's sync
    (residual.py) tells the rule what the applied step reached."""

    def __init__(self, rule: Any, config: EnvConfig, start: int) -> None:
        self.rule, self.config, self.start = rule, config, int(start)
        self.floor = min(redundant_count(config), config.scaling.max_instances)
        self.name = f"{getattr(rule, 'name', 'rule')} with redundancy from {self.start}"
        if self.start >= self.floor:
            raise ConfigError(
                f"{self.name}: the floor starts at {self.start} instances, not below the fleet it lifts to "
                f"({self.floor}: one instance under reward.slo_max_lost_share, within scaling.max_instances), so it "
                "would never act"
            )

    def __getattr__(self, attr: str) -> Any:
        if attr in ("desired", "rounded_from", "params"):
            return getattr(self.rule, attr)
        raise AttributeError(attr)

    def bind(self, env: Any) -> None:
        if hasattr(self.rule, "bind"):
            self.rule.bind(env)

    def reset(self, seed: int | None = None, num_envs: int = 1) -> None:
        self.rule.reset(seed, num_envs)

    def act_batch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        actions = np.asarray(self.rule.act_batch(obs, info), dtype=np.int64)
        current = controlled_count(info, self.config)
        reached = counts_reached(current, self.config, actions)
        lift = (reached >= self.start) & (reached < self.floor)
        if not lift.any():
            return actions
        up = action_for_target(np.full_like(current, self.floor), current, self.config, "up")
        # the rule takes the lifted count as its own decision (as RulePolicy accepts an overshooting step), so a
        # rule that keeps its desired count between steps does not walk the fleet back from it; a gate's sync
        # overwrites this where another expert's step was applied
        accept_counts(self.rule, lift, counts_reached(current, self.config, up))
        return np.where(lift, up, actions)
