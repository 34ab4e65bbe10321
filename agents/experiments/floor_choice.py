"""Choosing a redundancy floor for a rule on held-out seeds (agents/learned/redundancy.py): the gate specialists'
``redundancy`` option (ablation.py, ``GateSpecialists``) offers each specialist, besides its scenario's best rule
(expert 0), that rule with the floor whose start this choice finds.

Each candidate start ``n`` is rolled out on the scenario with the seeds ``seeds``, paired with the rule alone on the
same seeds. The seeds must lie below the benchmark's (which start at 1000); the default, 900-999, also avoids the
tuner's 0-19, on which the rules' settings were chosen and so look better than elsewhere. The choice is the candidate
with the highest mean reward among those that beat the rule by the verdict's reading (a higher mean reward at no
higher mean SLO share); equal rewards go to the larger start (the floor that acts on fewer fleets). None if no
candidate beats the rule: a floor costs instances, and where the rule already keeps its fleet above the floor's
count, or gains nothing from more instances, it buys nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling_env.config import ConfigError

from . import verdict as vd
from .train_config import FIRST_BENCHMARK_SEED

HELD_OUT_SEEDS = tuple(range(900, 1000))


@dataclass(frozen=True)
class FloorResult:
    """One candidate on the held-out seeds: its start (None: the rule alone), mean reward and mean SLO share."""

    start: int | None
    reward: float
    slo: float


def check_seeds(seeds: tuple[int, ...] | list[int], field: str) -> None:
    """ConfigError naming ``field`` unless the seeds are non-empty, distinct and below the benchmark's."""
    if not seeds:
        raise ConfigError(f"{field}: no seed given")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{field}: a seed appears twice")
    late = [s for s in seeds if s < 0 or s >= FIRST_BENCHMARK_SEED]
    if late:
        raise ConfigError(
            f"{field}: seeds must be in 0-{FIRST_BENCHMARK_SEED - 1} (the benchmark's start at "
            f"{FIRST_BENCHMARK_SEED}), got {late[0]}"
        )


def floor_results(
    scenario: str, spec: str, starts: list[int], seeds: tuple[int, ...] | list[int] = HELD_OUT_SEEDS
) -> list[FloorResult]:
    """The rule ``spec`` alone (first) and with a floor from each of ``starts``, on ``scenario`` over ``seeds``."""
    specs = {None: spec} | {n: f"{spec} with redundancy from {n}" for n in starts}
    runs = vd.tuning_episodes(list(specs.values()), [scenario], list(seeds), ("reward", "slo_violation_share"))
    return [
        FloorResult(
            start,
            float(np.mean(runs[(scenario, s)]["reward"])),
            float(np.mean(runs[(scenario, s)]["slo_violation_share"])),
        )
        for start, s in specs.items()
    ]


def choose_floor(results: list[FloorResult]) -> FloorResult | None:
    """The floor to offer (module docstring) from :func:`floor_results`' list (the rule alone first), or None."""
    base, floors = results[0], results[1:]
    better = [r for r in floors if r.reward > base.reward and r.slo <= base.slo]
    if not better:
        return None
    return max(better, key=lambda r: (r.reward, r.start))
