"""The memory of the micro states: reported before the solve, refused when it cannot fit.

A history model keeps, per macro point, a committed and a trial row of ``state_width()``
float64 (design.md §8): N points × W floats × 8 bytes × 2 buffers over all ranks. That is
compared with the memory available on the machines of the run (``MemAvailable`` of
``/proc/meminfo`` per host, summed over distinct hosts; ``os.sysconf`` where there is no
``/proc``).
"""

import logging
import os
import socket
from typing import Any, NamedTuple

from mpi4py import MPI

from hmm_fenics.errors import InputError

log = logging.getLogger(__name__)

BUFFERS = 2
"""Committed and trial."""
MiB = 2**20


class StateMemory(NamedTuple):
    """The state memory of a run: points, floats per point, bytes, bytes available."""

    points: int
    width: int
    nbytes: int
    available: int

    def describe(self) -> str:
        """``micro states: X MiB (N points × W floats × 2 buffers)``."""
        return (
            f"micro states: {self.nbytes / MiB:.1f} MiB ({self.points} points × {self.width} "
            f"floats × {BUFFERS} buffers)"
        )


def available_memory() -> int:
    """Bytes of memory available for new work on this host (MemAvailable), or -1 if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return -1


def state_memory(comm: Any, n_points: int, width: int) -> StateMemory:
    """The states' bytes over all ranks and the memory of the run's hosts (collective)."""
    points = int(comm.allreduce(n_points))
    width = int(comm.allreduce(width, op=MPI.MAX))
    hosts = dict(comm.allgather((socket.gethostname(), available_memory())))
    known = [v for v in hosts.values() if v >= 0]
    available = sum(known) if len(known) == len(hosts) else -1
    return StateMemory(points, width, points * width * 8 * BUFFERS, available)


def check_state_memory(memory: StateMemory) -> None:
    """Refuse states that would not fit: an ``InputError`` with the numbers and what to change.

    The same decision on every rank (the numbers are global). Unknown availability passes.
    """
    if memory.available < 0 or memory.nbytes <= memory.available:
        return
    raise InputError(
        f"{memory.describe()} exceed the {memory.available / MiB:.1f} MiB of memory available: "
        "use a coarser macro mesh (fewer points), a coarser micro mesh (fewer floats per "
        "point) or more ranks on more machines."
    )


def report_state_memory(comm: Any, n_points: int, width: int) -> StateMemory | None:
    """Log the state memory on rank 0 and refuse it if it cannot fit (collective).

    Nothing to report (None) for a model without states (``width`` 0 on every rank).
    """
    memory = state_memory(comm, n_points, width)
    if memory.width == 0:
        return None
    if comm.rank == 0:
        log.info("%s", memory.describe())
    check_state_memory(memory)
    return memory
