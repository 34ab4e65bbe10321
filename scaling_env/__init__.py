"""scaling-env: reinforcement-learning agents and rule-based autoscalers scaling a serverless service."""
# ruff: noqa: E402  (the JIT cache check must run before the compiled core is imported)

from gymnasium.envs.registration import register, registry

from .sim.jit_cache import invalidate_if_sources_changed

invalidate_if_sources_changed()

from .config import ConfigError, EnvConfig
from .envs.single import ServerlessScalingEnv
from .envs.vector import ServerlessScalingVectorEnv
from .fields import INFO_NAMES, OBS_NAMES, REWARD_NAMES
from .resources import package_version
from .scenarios import Scenario, load_scenario, scenario_names
from .sim import BatchSimulator

__version__ = package_version()  # from the installed metadata: pyproject.toml is the single source

__all__ = [
    "BatchSimulator",
    "ConfigError",
    "EnvConfig",
    "INFO_NAMES",
    "OBS_NAMES",
    "REWARD_NAMES",
    "Scenario",
    "ServerlessScalingEnv",
    "ServerlessScalingVectorEnv",
    "load_scenario",
    "scenario_names",
]  # ServerlessScalingVecEnv (SB3) is importable too, loaded on first use so that torch is not imported here

ENV_ID = "ServerlessScaling-v0"
ENV_ID_V1 = "ServerlessScaling-v1"  # the observation with history and a steady-state reset (the docstring's history)
for _id, _version in ((ENV_ID, 0), (ENV_ID_V1, 1)):
    if _id not in registry:
        register(
            id=_id,
            entry_point="scaling_env.envs.single:ServerlessScalingEnv",
            vector_entry_point="scaling_env.envs.vector:ServerlessScalingVectorEnv",
            kwargs={"version": _version},
        )


def __getattr__(name: str):
    # the SB3 adapter imports stable-baselines3 (and torch): load it only when asked for
    if name == "ServerlessScalingVecEnv":
        from .envs.sb3 import ServerlessScalingVecEnv

        return ServerlessScalingVecEnv
    raise AttributeError(f"module 'scaling_env' has no attribute {name!r}")
