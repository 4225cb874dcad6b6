"""The memory of the micro states: reported before the solve, refused when it cannot fit.

A history model keeps, per macro point, a committed row of ``state_width()`` float64 and a
trial row of ``trial_width()`` (design.md §8; a history cell's committed row is the gradient
and the internal variables, its fluctuation derived when needed, and its trial row the
gradient and the fluctuation only, its internal variables recomputed at commit:
``micro.state``; a model without ``trial_width`` is counted with a full trial row) and a
one-byte flag: N points × (W + T) floats × 8 bytes + N bytes over all ranks. Some moments
hold transient copies of the committed rows besides (:func:`transient_copies`): N × W × 8
bytes each. A commit (in place, row by row), a checkpoint of a model that computes its own
points (written from a view) and micro snapshots need none. The total is compared with the
memory available on the machines of the run (``MemAvailable`` of ``/proc/meminfo`` per host,
summed over distinct hosts; ``os.sysconf`` where there is no ``/proc``).
"""

import logging
import os
import socket
from typing import Any, NamedTuple

from mpi4py import MPI

from hmm_fenics.errors import InputError

log = logging.getLogger(__name__)

MiB = 2**20

MIGRATION_COPIES = 2
"""Copies of the committed rows a balanced schedule holds besides the states while it moves
them: at a replan one new array of the rows a rank computes next, filled from the rows that
stay (read from the store's view) and those received (only the rows whose computing rank
changes travel), then copied into the store after its old rows are released: 1 + the share
that arrives, at most 2; at a checkpoint the rows' return to the owners (``Exchange.backward``:
received and reordered, read from the view): 2. Measured with tracemalloc
(tests/test_state_memory.py)."""

RESTORE_COPIES = 1
"""Copies of the committed rows a resumed run holds while it restores them: the checkpoint's
bytes (or the rows gathered from its slices) while the store copies them."""


class StateMemory(NamedTuple):
    """The state memory of a run: points, floats per committed and trial row, bytes, available.

    ``nbytes`` is the peak: the states and ``copies`` transient copies of the committed rows.
    """

    points: int
    width: int
    trial_width: int
    nbytes: int
    available: int
    copies: int = 0

    def describe(self) -> str:
        """``micro states: X MiB (N points × (W committed + T trial) floats[ + C copies ...])``."""
        copies = (
            f" + {self.copies} transient cop{'y' if self.copies == 1 else 'ies'} of the "
            "committed rows"
            if self.copies
            else ""
        )
        return (
            f"micro states: {self.nbytes / MiB:.1f} MiB ({self.points} points × "
            f"({self.width} committed + {self.trial_width} trial) floats{copies})"
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


def state_widths(model: Any) -> tuple[int, int]:
    """Floats per point of a model's committed and trial rows (0, 0 without states).

    The committed width is the model's ``state_width()``; the trial width the
    ``trial_width()`` of the model or of a model it wraps (``inner``, followed down), or the
    committed width when none has one (a full trial row).
    """
    width = getattr(model, "state_width", None)
    if width is None:
        return 0, 0
    committed, candidate = int(width()), model
    while candidate is not None:
        trial = getattr(candidate, "trial_width", None)
        if trial is not None:
            return committed, int(trial()) if committed else 0
        candidate = getattr(candidate, "inner", None)
    return committed, committed


def transient_copies(model: Any, resuming: bool) -> int:
    """Transient copies of the committed rows a run of ``model`` holds besides the states.

    ``MIGRATION_COPIES`` for a balanced schedule (a model with ``owned_state_rows``: its
    states travel at every replan and checkpoint), else ``RESTORE_COPIES`` when
    ``resuming``, else none.
    """
    if hasattr(model, "owned_state_rows"):
        return MIGRATION_COPIES
    return RESTORE_COPIES if resuming else 0


def state_memory(
    comm: Any, n_points: int, width: int, trial_width: int | None = None, copies: int = 0
) -> StateMemory:
    """The states' peak bytes over all ranks and the memory of the run's hosts (collective).

    ``trial_width`` defaults to ``width`` (a full trial row); ``copies`` transient copies of
    the committed rows are added (:func:`transient_copies`).
    """
    points = int(comm.allreduce(n_points))
    width = int(comm.allreduce(width, op=MPI.MAX))
    trial = int(comm.allreduce(width if trial_width is None else trial_width, op=MPI.MAX))
    hosts = dict(comm.allgather((socket.gethostname(), available_memory())))
    known = [v for v in hosts.values() if v >= 0]
    available = sum(known) if len(known) == len(hosts) else -1
    flags = points if width else 0
    copies = copies if width else 0
    held = points * (width + trial + copies * width) * 8 + flags
    return StateMemory(points, width, trial, held, available, copies)


def check_state_memory(memory: StateMemory) -> None:
    """Refuse states that would not fit: an ``InputError`` with the numbers and what to change.

    The same decision on every rank (the numbers are global). Unknown availability passes.
    """
    if memory.available < 0 or memory.nbytes <= memory.available:
        return
    raise InputError(
        f"{memory.describe()} exceed the {memory.available / MiB:.1f} MiB of memory available: "
        "use a coarser macro mesh (fewer points), a coarser micro mesh (fewer floats per "
        "point) or more ranks on more machines"
        + (
            f'; solver.schedule = "owner" needs none of the {MIGRATION_COPIES} copies the '
            "balanced one holds while it moves the states."
            if memory.copies == MIGRATION_COPIES
            else "."
        )
    )


def report_state_memory(
    comm: Any, n_points: int, width: int, trial_width: int | None = None, copies: int = 0
) -> StateMemory | None:
    """Log the state memory on rank 0 and refuse it if it cannot fit (collective).

    Nothing to report (None) for a model without states (``width`` 0 on every rank).
    """
    memory = state_memory(comm, n_points, width, trial_width, copies)
    if memory.width == 0:
        return None
    if comm.rank == 0:
        log.info("%s", memory.describe())
    check_state_memory(memory)
    return memory
