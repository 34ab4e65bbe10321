"""``static``: a fixed instance count, the no-autoscaling reference."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from .base import Policy, PolicyParams


class StaticParams(PolicyParams):
    instances: int | None = Field(
        None, ge=0, le=4096,
        description="instance count to keep (None: the env's initial_instances, clipped to its bounds)",
    )


class StaticPolicy(Policy):
    """No autoscaling: keep ``instances`` instances (default: the env's ``initial_instances``).

    This is what a fleet provisioned by hand does, e.g. an EC2 Auto Scaling group with no scaling policy,
    whose desired capacity stays where it was set. If the count differs from ``instances`` (at reset, or
    after the bounds moved it) the policy steps towards it with the nearest available ``scale_steps``
    (``agents.base.action_for_target``) and then holds (action with change 0). Crashed instances are
    replaced by the env itself (``failures.replace_unhealthy``), not by this policy.
    """

    name = "static"
    Params = StaticParams
    launch_on_demand = False

    def __init__(self, env_config: Any, params: StaticParams | dict | None = None) -> None:
        super().__init__(env_config, params)
        sc = self.env_config.scaling
        wanted = sc.initial_instances if self.params.instances is None else self.params.instances
        self.instances = min(max(wanted, sc.min_instances), sc.max_instances)

    def _allocate(self, num_envs: int) -> None:
        pass

    def _clear(self, mask: np.ndarray) -> None:
        pass

    def _decide(self, obs, info, fresh, current, now) -> None:
        self.desired[:] = self.instances
