"""Cost-balanced scheduling: the plan balances skewed costs, the exchange is exact."""

from mpi4py import MPI

import numpy as np
import pytest
from conftest import glass_epoxy

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import BalancedModel, CellModel
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.parallel.exchange import Exchange
from hmm_fenics.parallel.schedule import loads_after, plan, plan_all, simulate
from hmm_fenics.solver import solve


@pytest.mark.parametrize("mix", [True, False])
@pytest.mark.parametrize("ranks", [2, 64, 1024])
def test_prefix_partition_balances_a_skewed_load(ranks, mix):
    rng = np.random.default_rng(1)
    costs = [rng.uniform(0.5, 1.5, 400) for _ in range(ranks)]
    for r in range(ranks // 8 + 1):  # a nonlinear zone: 10× dearer points on a few ranks
        costs[r] *= 10.0
    before, after, moved = simulate(costs, mix)
    assert before >= 1.5
    assert after <= 1.15
    assert 0 < moved < 1
    # the cut's bound: every rank's load is within one item's cost of the mean
    loads = loads_after(costs, plan_all(costs, mix))
    assert np.abs(loads - loads.mean()).max() <= max(c.max() for c in costs)


def reference_plan(costs_per_rank, mix):
    """The plan written out item by item: every item with its place in the global order
    (column, source rank, local position), sorted, then cut by the running total."""
    size = len(costs_per_rank)
    items = []  # (column, source, local position, cost)
    for source, costs in enumerate(costs_per_rank):
        for i, cost in enumerate(costs):
            column = (source + i) % size if mix else source  # dealt in local order
            items.append((column, source, i, float(cost)))
    items.sort()
    total = sum(item[3] for item in items)
    plans = [np.zeros(len(c), dtype=np.int64) for c in costs_per_rank]
    running = 0.0
    for _, source, i, cost in items:
        middle = running + cost / 2
        running += cost
        plans[source][i] = min(int(middle * size // total), size - 1)
    return plans


@pytest.mark.parametrize("mix", [True, False])
@pytest.mark.parametrize("ranks", [2, 3, 7])
def test_plan_equals_the_global_order_written_out(ranks, mix):
    rng = np.random.default_rng(ranks)
    costs = [rng.choice([0.3, 1.0, 7.0], rng.integers(0, 30)) for _ in range(ranks)]
    costs[0] = np.append(costs[0], [7.0, 7.0])
    for mine, theirs in zip(plan_all(costs, mix), reference_plan(costs, mix), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_a_cluster_that_turns_dear_after_the_plan_is_shared_when_dealt():
    """The history case: plan from the last costs (all equal), then the first 30 points of
    rank 0 (neighbours: a zone that starts yielding) cost 10× more. Dealt, they split over
    both ranks; shifted, they stay on rank 0."""
    planned = [np.ones(80), np.ones(80)]
    actual = [np.where(np.arange(80) < 30, 10.0, 1.0), np.ones(80)]
    dealt = loads_after(actual, plan_all(planned, mix=True))
    shifted = loads_after(actual, plan_all(planned, mix=False))
    # dealt: each rank gets 15 of the 30 dear points and 65 cheap ones, exactly
    np.testing.assert_array_equal(dealt, [15 * 10 + 65, 15 * 10 + 65])
    np.testing.assert_array_equal(shifted, [30 * 10 + 50, 80])  # = owner computes


@pytest.mark.parametrize("ranks", [2, 4])
def test_a_cluster_that_turns_dear_is_shared_when_the_planned_costs_are_noisy(ranks):
    """The same, planned from measured costs (equal cells, ±2% timing noise) instead of exact
    ties. Dealt in local order, rank 0's 30 dear neighbours split over the columns as
    evenly as 30 items can, whatever the noise: per column ceil(30/P) or floor(30/P) of
    them, so a rank's load exceeds the mean by at most ~one dear item plus the cut's one
    item, 1 + 10/((80 P + 270)/P) ~ 1.05 at P = 4 (a deal sorted by cost split the cluster
    by the noise: up to 1.21 at P = 2 and 1.28 at P = 4)."""
    actual = [np.where(np.arange(80) < 30, 10.0, 1.0)] + [np.ones(80)] * (ranks - 1)
    worst = 0.0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        planned = [rng.uniform(0.98, 1.02, 80) for _ in range(ranks)]
        loads = loads_after(actual, plan_all(planned))
        worst = max(worst, loads.max() / loads.mean())
    assert worst <= 1.05


@pytest.mark.parametrize("ranks", [2, 4, 16])
def test_a_replan_on_noisy_costs_moves_few_items(ranks):
    """Measured costs are noisy: replanning from the same loads with ±2% noise must keep
    nearly every item where it was (only items near a cut move; the columns do not depend
    on the costs). A deal sorted by cost re-routed 0.50 (P = 2) to 0.94 (P = 16) of them."""
    rng = np.random.default_rng(ranks)
    base = [
        rng.uniform(0.9, 1.1, 400) * (5.0 if r < max(1, ranks // 8) else 1.0) for r in range(ranks)
    ]
    noisy = [c * rng.uniform(0.98, 1.02, len(c)) for c in base]
    for mix in (True, False):
        first, second = plan_all(base, mix), plan_all(noisy, mix)
        rerouted = sum(int(np.count_nonzero(a != b)) for a, b in zip(first, second, strict=True))
        assert rerouted <= 0.01 * 400 * ranks, (mix, rerouted)  # measured: <= 0.13%


def test_non_finite_or_negative_costs_are_refused_on_every_rank():
    """One NaN on the last rank (or a negative cost) must raise everywhere, not send every
    item to rank 0 (a NaN cast to an integer rank, then clipped) or hang one rank."""
    comm = MPI.COMM_WORLD
    for bad in (np.nan, np.inf, -1.0):
        for mix in (True, False):
            costs = np.ones(10)
            if comm.rank == comm.size - 1:
                costs[3] = bad
            with pytest.raises(ValueError, match="finite and >= 0"):
                plan(comm, costs, mix)
            with pytest.raises(ValueError, match="finite and >= 0"):
                plan_all([np.ones(10), np.array([1.0, bad])], mix)
    assert comm.allreduce(1) == comm.size  # every rank is still in step


@pytest.mark.parametrize("mix", [True, False])
def test_plan_keeps_owner_computes_without_costs_and_balances_with_them(mix):
    comm = MPI.COMM_WORLD
    assert np.all(plan(comm, np.zeros(5), mix) == comm.rank)
    costs = np.full(100, 10.0 if comm.rank == 0 else 1.0)
    dest = plan(comm, costs, mix)
    loads = np.bincount(dest, weights=costs, minlength=comm.size)
    loads = comm.allreduce(loads)
    assert loads.max() / loads.mean() <= 1.15


@pytest.mark.parametrize("mix", [True, False])
def test_the_collective_plan_equals_the_numpy_one(mix):
    """``plan`` (Alltoall, Exscan, Allreduce) against ``plan_all`` on the gathered costs."""
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(10 + comm.rank)
    costs = rng.choice([0.5, 1.0, 4.0], 20 + 7 * comm.rank)
    everyone = comm.allgather(costs)
    np.testing.assert_array_equal(plan(comm, costs, mix), plan_all(everyone, mix)[comm.rank])


def test_exchange_round_trip_is_exact():
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(comm.rank)
    rows = rng.standard_normal((37, 3, 3))
    exchange = Exchange(comm, rng.integers(0, comm.size, len(rows)))
    there = exchange.forward(rows)
    assert there.shape == (exchange.n_received, 9)
    back = exchange.backward(there, (3, 3))
    np.testing.assert_array_equal(back, rows)


def test_balanced_fe2_equals_owner_computes():
    physics = hf.Elasticity(2)
    cell = hf.cell_problem(
        physics, hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.08)), glass_epoxy()
    )
    mesh = macro_mesh("plate-with-hole", 0.1, params={"L": 1.0, "R": 0.25})
    pull = {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.01, None)}
    owner, balanced = MacroProblem(mesh, physics, pull), MacroProblem(mesh, physics, pull)
    solve(owner, CellModel(cell))
    model = BalancedModel(CellModel(cell), MPI.COMM_WORLD)
    solve(balanced, model)
    np.testing.assert_allclose(balanced.u.x.array, owner.u.x.array, atol=1e-13)
    np.testing.assert_allclose(
        balanced.quadrature.flux.x.array, owner.quadrature.flux.x.array, atol=1e-12
    )


class SlowOnRankZero:
    """A linear answer that costs 2 ms per point computed on rank 0 and nothing elsewhere."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.last_costs = None

    def respond(self, gradients, points, ids=None):
        import time

        from hmm_fenics.micro.cell_problem import MicroResponse

        cost = 2e-3 if MPI.COMM_WORLD.rank == 0 else 0.0
        time.sleep(cost * len(gradients))
        self.last_costs = np.full(len(gradients), cost)
        eye = np.eye(self.n)
        return MicroResponse(gradients.copy(), np.broadcast_to(eye, (len(gradients), *eye.shape)))


def test_balanced_model_measures_the_imbalance_and_replans():
    """Rank 0's work takes time, the others' none: the model must see it (it did not when the
    time included the closing collective, which made every rank's time the slowest one's)."""
    comm = MPI.COMM_WORLD
    if comm.size == 1:
        pytest.skip("an imbalance needs two ranks")  # the MPI pass runs it
    model = BalancedModel(SlowOnRankZero(3), comm)
    points = np.zeros((20, 2))
    model.respond(np.ones((20, 3)), points)
    assert model.imbalance > 1.5  # rank 0 did all the timed work (max/mean = size)
    first = model.exchange
    model.respond(np.ones((20, 3)), points)  # replanned: rank 0 computes fewer points
    assert model.exchange is not first
    # the first (unit-cost) plan gave each rank 20 points; the replan sees rank 0's points cost
    # 2 ms and the others' nothing and gives rank 0 only its share of the dear ones (20/P)
    assert comm.bcast(model.exchange.n_received < first.n_received if comm.rank == 0 else None)
    changed = not np.array_equal(model.exchange.send_counts, first.send_counts)
    assert comm.allreduce(changed, op=MPI.LOR)  # the routing after the replan is another


def test_solver_reports_the_imbalance_of_owner_computes():
    """The per-iteration imbalance is the ranks' own micro times, not their common wait."""
    comm = MPI.COMM_WORLD
    if comm.size == 1:
        pytest.skip("an imbalance needs two ranks")  # the MPI pass runs it
    mesh = macro_mesh("rectangle", 0.25, comm, params={"L": 1.0, "H": 1.0})
    problem = MacroProblem(mesh, hf.Elasticity(2), {"left": (0.0, 0.0), "right": (0.01, 0.0)})
    result = solve(problem, SlowOnRankZero(3), progress=False)
    assert min(result.imbalance) > 1.5  # only rank 0's points cost time


class ClusterTurnsDear:
    """Reports synthetic costs by global index (no timing): every point costs 1 in the first
    answer; from the second on, the first 30 points of rank 0 cost 10 (a zone that starts
    yielding). ``work`` is the synthetic cost of the points this rank computed last."""

    def __init__(self, dear) -> None:
        self.dear, self.calls, self.work, self.last_costs = dear, 0, 0.0, None

    def respond(self, gradients, points, ids=None):
        from hmm_fenics.micro.cell_problem import MicroResponse

        self.calls += 1
        dear = np.isin(ids, self.dear) if self.calls > 1 else np.zeros(len(ids), bool)
        self.last_costs = np.where(dear, 10.0, 1.0)
        self.work = float(self.last_costs.sum())
        eye = np.eye(3)
        return MicroResponse(gradients.copy(), np.broadcast_to(eye, (len(gradients), 3, 3)))


@pytest.mark.parametrize("mix", [True, False])
def test_balanced_model_shares_a_cluster_that_turns_dear(mix):
    """The routing planned from the first answer's (equal) costs meets the second answer's
    clustered ones: dealt, the per-rank synthetic work is balanced to one dear point; the
    contiguous shift leaves the cluster with its owner (the case the dealing is for)."""
    comm = MPI.COMM_WORLD
    if comm.size == 1:
        pytest.skip("balance needs two ranks")  # the MPI pass runs it
    n = 40
    ids = comm.rank * n + np.arange(n)
    inner = ClusterTurnsDear(dear=np.arange(30))
    model = BalancedModel(inner, comm, replan_above=np.inf, mix=mix)  # keep the first plan
    for _ in range(2):
        flux = model.respond(np.ones((n, 3)) * ids[:, None], np.zeros((n, 2)), ids).flux
        np.testing.assert_array_equal(flux, np.ones((n, 3)) * ids[:, None])  # own answers back
    work = np.array(comm.allgather(inner.work))
    total = n * comm.size + 30 * 9
    assert work.sum() == total
    if mix:
        assert work.max() - total / comm.size <= 10.0  # within one dear point of the mean
    else:
        assert work.max() / work.mean() > 1.5  # owner computes: rank 0 holds the cluster
