"""``static``: a fixed instance count, the no-autoscaling reference."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from scaling_env.sim.simulator import BatchSimulator

from ..base import PolicyParams
from ..rules.base import RulePolicy
from .sim_access import find_simulator


class StaticParams(PolicyParams):
    instances: int | Literal["peak"] | None = Field(
        None,
        description="instance count to keep (None: the env's initial_instances, clipped to its bounds; 'peak': "
        "sized for the episode's peak rate at peak_utilization)",
    )
    peak_utilization: float = Field(0.7, gt=0.0, le=1.0, description="CPU utilisation at the peak, with 'peak'")


class StaticPolicy(RulePolicy):
    """No autoscaling: keep ``instances`` instances (default: the env's ``initial_instances``; ``peak``: the
    fewest instances that serve the episode's peak arrival rate at ``peak_utilization`` CPU, i.e.
    ``ceil(peak_rps * service_seconds / (concurrency * peak_utilization))``, read from the simulator at reset).

    This is what a fleet provisioned by hand does, e.g. an EC2 Auto Scaling group with no scaling policy,
    whose desired capacity stays where it was set. If the count differs from ``instances`` (at reset, or
    after the bounds moved it) the policy steps towards it with the nearest available ``scale_steps``
    (``agents.actions.action_for_target``) and then holds (action with change 0). Crashed instances are
    replaced by the env itself (``failures.replace_unhealthy``), not by this policy.
    """

    name = "static"
    Params = StaticParams
    launch_on_demand = False

    def _setup(self) -> None:
        sc = self.env_config.scaling
        wanted = self.params.instances
        if isinstance(wanted, int) and not 0 <= wanted <= 4096:
            raise ValueError(f"static policy params: instances must be in [0, 4096], got {wanted}")
        if wanted is None:
            wanted = sc.initial_instances
        self.peak = wanted == "peak"
        self.instances = 0 if self.peak else min(max(int(wanted), sc.min_instances), sc.max_instances)
        self.sim: BatchSimulator | None = None
        self._per_cluster("sized", self.instances, np.int64)  # the count to keep (with peak: set at each reset)

    def bind(self, env: Any) -> None:
        """With ``instances: peak``, read each episode's peak rate from the simulator (capacity planning for
        a known peak, as an operator without autoscaling does); otherwise nothing is read."""
        if self.peak:
            self.sim = find_simulator(env, "static policy with instances: peak")

    def _clear(self, mask: np.ndarray) -> None:
        if self.peak:
            if self.sim is None:
                raise RuntimeError("static policy with instances: peak needs bind(env) before acting")
            c = self.env_config
            peak_rps = self.sim.expected_arrivals()[mask].max(axis=1) / c.step_seconds
            per_instance = c.instances.concurrency / c.instances.service_seconds * self.params.peak_utilization
            self.sized[mask] = np.ceil(peak_rps / per_instance - 1e-9).astype(np.int64)

    def _decide(
        self, obs: np.ndarray, info: dict[str, Any], fresh: np.ndarray, current: np.ndarray, now: np.ndarray
    ) -> None:
        self.desired[:] = self.sized
