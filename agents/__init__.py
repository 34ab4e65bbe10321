"""Policies that choose scale actions for scaling-env: rule-based autoscalers, a clairvoyant oracle, and (via
``make_policy("ppo:RUN_DIR", ...)``) trained agents. See ``agents.base.Policy`` for the interface."""

from scaling_env import __version__  # one distribution, one version

from .base import Policy, PolicyConfigError, PolicyParams, action_for_change, action_for_target
from .references.oracle import OraclePolicy
from .references.static import StaticPolicy
from .registry import POLICIES, make_policy
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
    "PolicyConfigError",
    "PolicyParams",
    "PredictivePolicy",
    "StaticPolicy",
    "StepScalingPolicy",
    "TargetTrackingPolicy",
    "ThresholdPolicy",
    "action_for_change",
    "action_for_target",
    "make_policy",
]
