"""Gymnasium and stable-baselines3 adapters over the compiled simulation."""

from .single import ServerlessScalingEnv
from .vector import ServerlessScalingVectorEnv

__all__ = ["ServerlessScalingEnv", "ServerlessScalingVectorEnv"]  # envs.sb3 imports SB3 and torch: on demand
