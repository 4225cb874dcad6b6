"""Balancing a history-dependent FE² run: record per-point micro costs, replay schedules offline.

    OMP_NUM_THREADS=1 python bench/bench_balance.py record demos/plastic_composite.toml \\
        --out /tmp/costs1.npz                                   # serial: the costs
    OMP_NUM_THREADS=1 mpirun -n 2 python bench/bench_balance.py record \\
        demos/plastic_composite.toml --out /tmp/costs2.npz      # the 2-rank owners (and costs)
    python bench/bench_balance.py replay /tmp/costs1.npz --owners /tmp/costs2.npz

``record`` runs the job with a ``BalancedModel`` (``--replan-above``) that notes, per ``respond``, the load step,
the macro iteration within it and every point's measured cost (by global index), and the
time of each replan (moving the states). ``replay`` plays the recorded costs through
schedules that decide from what they knew before each ``respond`` (the costs of earlier
ones) and prints each one's micro efficiency Σ load / (P Σ max load) and its imbalances.
"""

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Policy = Callable[[int, Any], Any]


def record(run_file: str, out: str, replan_above: float) -> int:
    from mpi4py import MPI

    import hmm_fenics.run.job as job
    from hmm_fenics.cli import main
    from hmm_fenics.coupling.micro_models import BalancedModel

    notes: list[tuple[int, int, Any, Any]] = []
    replans: list[tuple[float, int]] = []

    class Recording(BalancedModel):
        step = iteration = 0

        def __init__(self, inner: Any, comm: Any) -> None:
            super().__init__(inner, comm, replan_above=replan_above)

        def begin_step(self, time: float, dt: float) -> None:
            self.step, self.iteration = self.step + 1, 0
            super().begin_step(time, dt)

        def _replan(self, exchange: Any) -> None:
            started = time.perf_counter()
            first, sent = self.exchange is None, self.rows_sent
            super()._replan(exchange)
            if first:
                return  # nothing travels: the states are made where the plan puts them
            replans.append((time.perf_counter() - started, self.rows_sent - sent))

        def respond(self, gradients: Any, points: Any, ids: Any = None) -> Any:
            response = super().respond(gradients, points, ids)
            assert self.costs is not None
            notes.append((self.step, self.iteration, np.asarray(ids), self.costs.copy()))
            self.iteration += 1
            return response

    job.BalancedModel = Recording  # type: ignore[misc]
    code = main(["run", run_file, "-o", out + ".run", "-q", "--overwrite"])
    comm = MPI.COMM_WORLD
    gathered = comm.gather((notes, replans), root=0)
    if comm.rank == 0 and gathered is not None:
        n = int(sum(len(ids) for ids in (g[0][0][2] for g in gathered)))
        costs = np.zeros((len(notes), n))
        owners = np.zeros(n, dtype=np.int64)
        for rank, (mine, _) in enumerate(gathered):
            owners[mine[0][2]] = rank
            for r, (_, _, ids, c) in enumerate(mine):
                costs[r, ids] = c
        local = np.concatenate([g[0][0][2] for g in gathered])  # ids in each owner's order
        np.savez(
            out,
            costs=costs,
            owners=owners,
            local_order=local,
            steps=np.array([s for s, _, _, _ in notes]),
            iterations=np.array([k for _, k, _, _ in notes]),
            replan_seconds=np.array([t for g in gathered for t, _ in g[1]]),
            replan_rows=np.array([m for g in gathered for _, m in g[1]]),
        )
    return code


def replay(costs_file: str, owners_file: str | None) -> dict[str, tuple[float, ...]]:
    """Print the table; return it by schedule: (efficiency, iteration-0 mean and max imbalance,
    later mean and max, rows moved)."""
    from hmm_fenics.parallel.schedule import loads_after, plan_all

    data = np.load(costs_file)
    costs, steps, iterations = data["costs"], data["steps"], data["iterations"]
    split_data = np.load(owners_file) if owners_file else data
    owners, local = split_data["owners"], split_data["local_order"]
    size = int(owners.max()) + 1
    order = [local[owners[local] == rank] for rank in range(size)]  # each owner's own order
    split = [[c[ids] for ids in order] for c in costs]

    def routed(plans: list[Any], r: int) -> Any:
        return loads_after(split[r], plans)

    def previous_step(r: int) -> Any:  # idea 1: iteration k of the previous step, else the last
        if r == 0:
            return np.ones(costs.shape[1])
        same = np.flatnonzero((steps == steps[r] - 1) & (iterations == iterations[r]))
        return costs[same[0]] if len(same) else costs[r - 1]

    def schedule(predict: Callable[[int], Any], mix: bool, above: float, measured: bool) -> Any:
        plans: list[Any] | None = None
        maxima, totals, lines, moved = [], [], [], 0
        for r in range(len(costs)):
            guess = predict(r)
            parts = [guess[ids] for ids in order]
            if plans is None:
                plans = plan_all(parts, mix)
            else:  # the measured imbalance of the last respond, or the predicted one
                loads = routed(plans, r - 1) if measured else loads_after(parts, plans)
                if loads.max() / loads.mean() > above:
                    new = plan_all(parts, mix)
                    moved += sum(
                        int(np.count_nonzero(a != b)) for a, b in zip(new, plans, strict=True)
                    )
                    plans = new
            loads = routed(plans, r)
            maxima.append(loads.max())
            totals.append(loads.sum())
            lines.append(loads.max() / loads.mean())
        lines_ = np.array(lines)
        first = iterations == 0
        return (
            sum(totals) / (size * sum(maxima)),
            lines_[first].mean(),
            lines_[first].max(),
            lines_[~first].mean(),
            lines_[~first].max(),
            moved,
        )

    def last(r: int) -> Any:  # nothing known before the first answer: unit costs
        return np.ones(costs.shape[1]) if r == 0 else costs[r - 1]

    def oracle(r: int) -> Any:
        return costs[r]

    rows = [
        ("before: contiguous, last costs, measured > 1.15", last, False, 1.15, True),
        ("idea 1: contiguous, k-th of previous step, > 1.03", previous_step, False, 1.03, False),
        ("idea 2: contiguous, last costs, predicted > 1.03", last, False, 1.03, False),
        ("contiguous, last costs, every respond", last, False, 0.0, False),
        ("dealt, last costs, measured > 1.15 (the default)", last, True, 1.15, True),
        ("dealt, last costs, measured > 1.05", last, True, 1.05, True),
        ("dealt, last costs, every respond", last, True, 0.0, True),
        ("bound: contiguous on the respond's own costs", oracle, False, 0.0, False),
    ]
    print(
        f"{len(costs)} responds, {costs.shape[1]} points, {size} ranks, micro {costs.sum():.2f} s"
    )
    print(f"{'schedule':52s} efficiency  iteration 0: mean max  later: mean max  rows moved")
    table = {}
    for name, predict, mix, above, measured in rows:
        e, m0, x0, m1, x1, moved = table[name] = schedule(predict, mix, above, measured)
        print(f"{name:52s} {e:10.3f}  {m0:17.2f} {x0:4.2f}  {m1:11.3f} {x1:4.2f}  {moved:10d}")
    if "replan_seconds" in data and len(data["replan_seconds"]):
        t, rows_ = data["replan_seconds"], data["replan_rows"]
        print(
            f"recorded replans (per rank): {len(t)}, {1e3 * t.mean():.1f} ms mean "
            f"({1e3 * t.max():.1f} max), {rows_.mean():.0f} rows sent away mean"
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("run_file")
    rec.add_argument("--out", required=True)
    rec.add_argument("--replan-above", type=float, default=1.15)
    rep = sub.add_parser("replay")
    rep.add_argument("costs")
    rep.add_argument("--owners", default=None)
    args = parser.parse_args(argv)
    if args.command == "record":
        import hmm_fenics  # noqa: F401  (before dolfinx: the wheel's libmpi)

        return record(args.run_file, args.out, args.replan_above)
    replay(args.costs, args.owners)
    return 0


if __name__ == "__main__":
    sys.exit(main())
