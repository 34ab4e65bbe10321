"""Experiment tooling on top of the policies: benchmark, training, evaluation, verdicts, plots and the CLI."""
