"""The shipped configurations, as package data: scenarios/, policies/, train/, env/.

This folder is the source; the wheel installs it as ``scaling_env.configs`` (pyproject.toml maps it). Code finds
it through ``scaling_env.resources.config_dir``.
"""
