"""Collective failure: a failure on any rank becomes the same error on every rank.

A rank that raised while the others went on to the next collective would hang them all.
Each rank reports its failure (or none) in one allgather after the local work, and every rank
raises the first one, naming the rank it came from.
"""

from typing import Any


def first_failure(comm: Any, error: BaseException | None) -> str | None:
    """The first failure over the ranks of ``comm`` (lowest rank), or None on every rank.

    Args:
        comm: An mpi4py communicator; every rank must call this.
        error: This rank's exception, or None.

    Returns:
        ``"rank r: <Type>: <message>"`` of the lowest failing rank, identical on all ranks.
    """
    local = None if error is None else f"{type(error).__name__}: {error}"
    for rank, message in enumerate(comm.allgather(local)):
        if message is not None:
            return f"rank {rank}: {message}"
    return None
