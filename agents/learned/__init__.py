"""Learned policies (trained with stable-baselines3), loaded by spec prefix in the registry."""
