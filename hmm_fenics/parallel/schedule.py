"""Cost-balanced scheduling of micro work items over ranks (mpi4py + NumPy only).

Items (macro quadrature points) are ordered rank by rank; with the prefix sums of their
measured costs, item i goes to the rank whose share [k T/P, (k+1) T/P) of the total cost T
holds the middle of the item's cost interval. Each rank needs only the exclusive prefix sum of
the per-rank totals (one Exscan and one Allreduce): no rank ever sees all items, and items
move only to neighbouring ranks in the global order. The per-rank load then differs from the
mean by at most one item's cost.
"""

from typing import Any

import numpy as np
import numpy.typing as npt


def destinations(
    costs: npt.NDArray[np.float64], offset: float, total: float, size: int
) -> npt.NDArray[np.int64]:
    """Destination rank of each local item.

    Args:
        costs: Cost of each local item, shape ``(n,)`` (e.g. seconds of its last micro solve).
        offset: Total cost of the items of all lower ranks.
        total: Total cost over all ranks.
        size: Number of ranks.
    """
    if total <= 0 or size == 1:
        return (
            np.zeros(len(costs), dtype=np.int64)
            if size == 1
            else np.full(len(costs), -1, dtype=np.int64)
        )
    middle = offset + np.cumsum(costs) - 0.5 * costs
    return np.minimum((middle * size / total).astype(np.int64), size - 1)


def plan(comm: Any, costs: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Destination rank of each local item, balancing the cost over ``comm`` (collective).

    With no cost information yet (all zero), every item stays where it is.
    """
    from mpi4py import MPI

    local = float(np.sum(costs))
    offset = comm.exscan(local, op=MPI.SUM) if comm.size > 1 else 0.0
    offset = 0.0 if offset is None else float(offset)
    total = float(comm.allreduce(local, op=MPI.SUM))
    if total <= 0:
        return np.full(len(costs), comm.rank, dtype=np.int64)
    return destinations(np.asarray(costs, dtype=np.float64), offset, total, comm.size)


def simulate(costs_per_rank: list[npt.NDArray[np.float64]]) -> tuple[float, float, float]:
    """Balance the owner-computes loads of ``P = len(costs_per_rank)`` ranks, in NumPy alone.

    Returns:
        (max/mean load before, max/mean load after, fraction of items that move).
    """
    size = len(costs_per_rank)
    totals = np.array([c.sum() for c in costs_per_rank])
    offsets = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    total = float(totals.sum())
    after = np.zeros(size)
    moved = 0
    for rank, (c, offset) in enumerate(zip(costs_per_rank, offsets, strict=True)):
        dest = destinations(c, float(offset), total, size)
        np.add.at(after, dest, c)
        moved += int(np.count_nonzero(dest != rank))
    items = sum(len(c) for c in costs_per_rank)
    return (
        float(totals.max() / totals.mean()),
        float(after.max() / after.mean()),
        moved / max(items, 1),
    )
