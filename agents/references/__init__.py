"""References that are not deployable autoscalers: a fixed fleet, and policies that know the future."""
