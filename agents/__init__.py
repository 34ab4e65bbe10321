"""Policies that choose scale actions for scaling-env: rule-based autoscalers, a clairvoyant oracle, and (via
``make_policy("ppo:RUN_DIR", ...)``) trained agents.

``agents.base.Policy`` is the interface (a protocol) and ``PolicyBase`` the base of this package's policies;
``agents.rules.base.RulePolicy`` is the base of the rule policies (a desired count rounded to the env's scale
steps by ``agents.actions``)."""

from scaling_env import __version__  # one distribution, one version

from .actions import action_for_change, action_for_target, controlled_count
from .base import Policy, PolicyBase, PolicyConfigError, PolicyParams
from .references.oracle import OraclePolicy
from .references.static import StaticPolicy
from .registry import POLICIES, make_policy
from .rules.base import RulePolicy
from .rules.hpa import HpaPolicy
from .rules.kpa import KpaPolicy
from .rules.predictive import PredictivePolicy
from .rules.step_scaling import StepScalingPolicy
from .rules.target_tracking import TargetTrackingPolicy
from .rules.threshold import ThresholdPolicy

__all__ = [
    "__version__",
    "POLICIES",
    "HpaPolicy",
    "KpaPolicy",
    "OraclePolicy",
    "Policy",
    "PolicyBase",
    "PolicyConfigError",
    "PolicyParams",
    "PredictivePolicy",
    "RulePolicy",
    "StaticPolicy",
    "StepScalingPolicy",
    "TargetTrackingPolicy",
    "ThresholdPolicy",
    "action_for_change",
    "action_for_target",
    "controlled_count",
    "make_policy",
]
