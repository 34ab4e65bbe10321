"""Policies that choose scale actions for scaling-env: rule-based autoscalers, a clairvoyant oracle, and (via
``make_policy("ppo:RUN_DIR", ...)``) trained agents. See ``agents.base.Policy`` for the interface."""

from .base import Policy, PolicyConfigError, PolicyParams, action_for_change, action_for_target
from .hpa import HpaPolicy
from .kpa import KpaPolicy
from .oracle import OraclePolicy
from .predictive import PredictivePolicy
from .registry import POLICIES, make_policy
from .static import StaticPolicy
from .step_scaling import StepScalingPolicy
from .target_tracking import TargetTrackingPolicy
from .threshold import ThresholdPolicy

__all__ = [
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
