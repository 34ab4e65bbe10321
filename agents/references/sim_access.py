"""Finding the simulator behind an env, for the reference policies that read it (the oracle, ``static_peak``)."""

from __future__ import annotations

from typing import Any

from scaling_env.sim.simulator import BatchSimulator


def find_simulator(env: Any, reader: str) -> BatchSimulator:
    """The ``BatchSimulator`` behind a single env, a vector env or a one-config SB3 VecEnv (or wrappers); a
    TypeError naming ``reader`` (the policy that needs it) if there is none."""
    for obj in (env, getattr(env, "unwrapped", None)):
        sim = getattr(obj, "sim", None) if obj is not None else None
        if isinstance(sim, BatchSimulator):
            return sim
    raise TypeError(
        f"{reader}: {type(env).__name__} exposes no BatchSimulator as .sim or .unwrapped.sim "
        "(a ServerlessScalingEnv, ServerlessScalingVectorEnv or one-config SB3 VecEnv is needed)"
    )
