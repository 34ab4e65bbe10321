"""The compiled simulation: B clusters stepped by one numba call (imports neither gymnasium nor SB3)."""

from .simulator import BatchSimulator, FinalStep

__all__ = ["BatchSimulator", "FinalStep"]
