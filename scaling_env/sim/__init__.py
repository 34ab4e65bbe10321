"""The compiled simulation: B clusters stepped by one numba call (imports neither gymnasium nor SB3).

Rules that policies and planners share with the kernel are exported here: ``counted`` / ``counted_array`` (which
instances an action controls) and ``bounded_change`` / ``bounded_changes`` (the bounds clip of a scale change),
each as a compiled scalar function and its numpy version.
"""

from .instances import bounded_change, bounded_changes, counted, counted_array
from .simulator import BatchSimulator, FinalStep

__all__ = ["BatchSimulator", "FinalStep", "bounded_change", "bounded_changes", "counted", "counted_array"]
