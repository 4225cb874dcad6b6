"""Cost-balanced scheduling of micro work items over ranks (mpi4py + NumPy only).

A plan has two stages.

1. **Dealing** (``mix=True``, the default). Each rank deals its items round robin over all
   ``P`` ranks in its local order, starting at its own: its j-th item goes to column
   ``(rank + j) mod P``. Items that are neighbours in a rank's order (neighbours in space)
   land in different columns, so a spatially clustered change of the costs after the plan
   was made (a plastic zone that grows from a hole, an unloading step in which it stops
   yielding) falls on every column nearly equally. A plan can only use the costs of the last
   answer, and in a history-dependent run those change most exactly where it matters: the
   first iteration of each load step (BENCHMARKS.md, plastic demo). The columns do not
   depend on the costs: measured costs are noisy timings, and a deal sorted by cost would
   send almost every item elsewhere at each replan (and split a cluster unevenly as soon as
   its planned costs are not exact ties); only the cut below moves with the costs.
2. **Cutting.** The items in the global order (column by column, within a column source
   rank by source rank, within those in local order) are cut by the prefix sums of their
   costs: an item goes to the rank whose share ``[k T/P, (k+1) T/P)`` of the total cost
   ``T`` holds the middle of the item's cost interval. Each rank's planned load then
   differs from the mean by at most one item's cost.

No rank sees all items: per rank one Alltoall of ``P`` column totals each way, an Exscan and
an Allreduce. With ``mix=False`` the rank-by-rank order is cut directly (a contiguous shift:
items move only to neighbouring ranks in the order, fewer of them, but a cluster that turns
dear after the plan stays on the ranks that own it).
"""

from typing import Any

import numpy as np
import numpy.typing as npt

Costs = npt.NDArray[np.float64]
Ranks = npt.NDArray[np.int64]


def destinations(costs: Costs, offset: float, total: float, size: int) -> Ranks:
    """Destination rank of each local item in the rank-by-rank order (the contiguous shift).

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
    return _cut(offset + np.cumsum(costs) - 0.5 * costs, total, size)


def deal(n: int, rank: int, size: int) -> Ranks:
    """Stage 1: the column of each of ``n`` local items, ``(rank + j) mod size`` for the j-th."""
    return (rank + np.arange(n, dtype=np.int64)) % size


def column_loads(costs: Costs, columns: Ranks, size: int) -> Costs:
    """Total cost of the local items dealt to each column, ``(size,)``."""
    return np.bincount(columns, weights=costs, minlength=size).astype(np.float64)


def dealt_destinations(
    costs: Costs, columns: Ranks, offsets: Costs, total: float, size: int
) -> Ranks:
    """Stage 2: destination rank of each local item from its column and the chunk offsets.

    Args:
        costs: Cost of each local item.
        columns: Column of each local item (from :func:`deal`).
        offsets: Per column, the total cost of everything before this rank's chunk of that
            column in the global order (all lower columns, then the lower ranks' chunks).
        total: Total cost over all ranks.
        size: Number of ranks.
    """
    by_column = np.argsort(columns, kind="stable")  # column, then local order
    c, col = costs[by_column], columns[by_column]
    running = np.cumsum(c)
    first = np.searchsorted(col, col)  # the first item of each item's chunk
    within = running - (running[first] - c[first])  # inclusive sum within the chunk
    middles = np.empty(len(costs))
    middles[by_column] = offsets[col] + within - 0.5 * c
    return _cut(middles, total, size)


def _cut(middles: Costs, total: float, size: int) -> Ranks:
    ranks = (np.asarray(middles) * size / total).astype(np.int64)
    return np.clip(ranks, 0, size - 1)  # clip: round-off of sums taken in other orders


def _bad(costs: Costs) -> tuple[int, int]:
    """Counts of the costs that are not finite and of those that are negative."""
    return int(np.count_nonzero(~np.isfinite(costs))), int(np.count_nonzero(costs < 0))


def _refuse(nonfinite: int, negative: int) -> None:
    if nonfinite or negative:
        raise ValueError(
            f"balancing plan: the item costs must be finite and >= 0; over all ranks "
            f"{nonfinite} are not finite (NaN or inf) and {negative} are negative"
        )


def plan(comm: Any, costs: Costs, mix: bool = True) -> Ranks:
    """Destination rank of each local item, balancing the cost over ``comm`` (collective).

    With no cost information yet (all zero), every item stays where it is. A cost that is
    not finite or negative on any rank raises ``ValueError`` on every rank.

    Args:
        comm: The communicator.
        costs: Cost of each local item, ``(n,)`` (the same measure on every rank).
        mix: Deal the items over all ranks before cutting (stage 1 of the module docstring);
            False: cut the rank-by-rank order (a contiguous shift).
    """
    from mpi4py import MPI

    costs = np.asarray(costs, dtype=np.float64)
    size = comm.size
    sums = np.array([np.sum(costs), *_bad(costs)])  # the sum is used only when all are fine
    comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)  # one collective: every rank raises alike
    _refuse(int(sums[1]), int(sums[2]))
    total = float(sums[0])
    if total <= 0:
        return np.full(len(costs), comm.rank, dtype=np.int64)
    if size == 1:
        return np.zeros(len(costs), dtype=np.int64)
    if not mix:
        offset = comm.exscan(float(np.sum(costs)), op=MPI.SUM)
        return destinations(costs, 0.0 if offset is None else float(offset), total, size)
    columns = deal(len(costs), comm.rank, size)
    mine = column_loads(costs, columns, size)
    chunks = np.empty(size)  # chunks[s]: what rank s dealt to this rank's column
    comm.Alltoall(mine, chunks)
    before = comm.exscan(float(chunks.sum()), op=MPI.SUM)  # all lower columns
    starts = (0.0 if before is None else float(before)) + np.cumsum(chunks) - chunks
    offsets = np.empty(size)  # offsets[v]: where this rank's chunk of column v starts
    comm.Alltoall(starts, offsets)
    return dealt_destinations(costs, columns, offsets, total, size)


def plan_all(costs_per_rank: list[Costs], mix: bool = True) -> list[Ranks]:
    """:func:`plan` for ``P = len(costs_per_rank)`` ranks in NumPy alone (the same plan)."""
    size = len(costs_per_rank)
    costs_per_rank = [np.asarray(c, dtype=np.float64) for c in costs_per_rank]
    _refuse(*np.array([_bad(c) for c in costs_per_rank]).reshape(-1, 2).sum(axis=0))
    total = float(sum(c.sum() for c in costs_per_rank))
    if total <= 0:
        return [np.full(len(c), rank, dtype=np.int64) for rank, c in enumerate(costs_per_rank)]
    if size == 1:
        return [np.zeros(len(costs_per_rank[0]), dtype=np.int64)]
    if not mix:
        totals = np.array([c.sum() for c in costs_per_rank])
        offsets = np.cumsum(totals) - totals
        return [
            destinations(c, float(o), total, size)
            for c, o in zip(costs_per_rank, offsets, strict=True)
        ]
    dealt = [deal(len(c), rank, size) for rank, c in enumerate(costs_per_rank)]
    loads = np.array(  # loads[s, v]: what rank s deals to column v
        [column_loads(c, d, size) for c, d in zip(costs_per_rank, dealt, strict=True)]
    )
    columns = loads.sum(axis=0)
    starts = (np.cumsum(columns) - columns)[None, :] + np.cumsum(loads, axis=0) - loads
    return [
        dealt_destinations(c, d, starts[rank], total, size)
        for rank, (c, d) in enumerate(zip(costs_per_rank, dealt, strict=True))
    ]


def loads_after(costs_per_rank: list[Costs], plans: list[Ranks]) -> Costs:
    """Per-rank load when every item goes where ``plans`` sends it, ``(P,)``."""
    after = np.zeros(len(costs_per_rank))
    for c, dest in zip(costs_per_rank, plans, strict=True):
        np.add.at(after, dest, c)
    return after


def simulate(costs_per_rank: list[Costs], mix: bool = True) -> tuple[float, float, float]:
    """Balance the owner-computes loads of ``P = len(costs_per_rank)`` ranks, in NumPy alone.

    Returns:
        (max/mean load before, max/mean load after, fraction of items that move).
    """
    totals = np.array([np.sum(c) for c in costs_per_rank])
    plans = plan_all(costs_per_rank, mix)
    after = loads_after(costs_per_rank, plans)
    moved = sum(int(np.count_nonzero(d != rank)) for rank, d in enumerate(plans))
    items = sum(len(c) for c in costs_per_rank)
    return (
        float(totals.max() / totals.mean()),
        float(after.max() / after.mean()),
        moved / max(items, 1),
    )
