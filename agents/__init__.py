"""Policies that choose scale actions for scaling-env (rule-based autoscalers, and later learned agents)."""

from .simple import CpuThresholdPolicy, StaticPolicy

__all__ = ["CpuThresholdPolicy", "StaticPolicy"]
