"""How long one DAgger fit takes: a run's records, fitted again as its last round was (agents/experiments/imitate.py).

    python perf/imitation_fit_time.py CONFIG RUN

Loads ``RUN/records.npz`` (every round's records) and fits a new student with ``CONFIG`` (the run's imitation
config) as ``imitate`` fits its last round; prints the records, the wall time and the accuracy, which equals the
last row of ``RUN/rounds.csv`` when the fit repeats. A round's other time is the teachers' labels and the
selection episodes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from agents.learned.torch_kernels import pin_training_kernels

pin_training_kernels()  # before torch computes: the kernels the run fitted with

import torch  # noqa: E402

from agents.experiments import imitate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", help="the run's imitation config")
    ap.add_argument("run", type=Path, help="the run folder (its records.npz)")
    args = ap.parse_args()
    icfg = imitate.load_imitation_config(args.config)
    path = args.run / "records.npz"
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (a run of agents.experiments.imitate writes it)")
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    names = [str(s) for s in data["scenarios"]] if "scenarios" in data else icfg.scenarios
    icfg, cfg, envs = imitate.prepare(icfg, names)
    torch.set_num_threads(cfg.torch_threads)
    start = time.perf_counter()
    _, _, accuracy = imitate.fit_student(cfg, icfg, envs, data)
    seconds = time.perf_counter() - start
    print(f"{args.run}: {len(data['labels'])} records, fit {seconds:.1f} s, accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
