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
from hmm_fenics.parallel.schedule import plan, simulate
from hmm_fenics.solver import solve


@pytest.mark.parametrize("ranks", [2, 64, 1024])
def test_prefix_partition_balances_a_skewed_load(ranks):
    rng = np.random.default_rng(1)
    costs = [rng.uniform(0.5, 1.5, 400) for _ in range(ranks)]
    for r in range(ranks // 8 + 1):  # a nonlinear zone: 10× dearer points on a few ranks
        costs[r] *= 10.0
    before, after, moved = simulate(costs)
    assert before >= 1.5
    assert after <= 1.15
    assert 0 < moved < 1


def test_plan_keeps_owner_computes_without_costs_and_balances_with_them():
    comm = MPI.COMM_WORLD
    assert np.all(plan(comm, np.zeros(5)) == comm.rank)
    costs = np.full(100, 10.0 if comm.rank == 0 else 1.0)
    dest = plan(comm, costs)
    loads = np.bincount(dest, weights=costs, minlength=comm.size)
    loads = comm.allreduce(loads)
    assert loads.max() / loads.mean() <= 1.15


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
    model.respond(np.ones((20, 3)), points)  # replanned: rank 0's points moved away
    moved = model.exchange.send_counts[comm.rank] < 20 if comm.rank == 0 else True
    assert comm.allreduce(bool(moved), op=MPI.LAND)


def test_solver_reports_the_imbalance_of_owner_computes():
    """The per-iteration imbalance is the ranks' own micro times, not their common wait."""
    comm = MPI.COMM_WORLD
    if comm.size == 1:
        pytest.skip("an imbalance needs two ranks")  # the MPI pass runs it
    mesh = macro_mesh("rectangle", 0.25, comm, params={"L": 1.0, "H": 1.0})
    problem = MacroProblem(mesh, hf.Elasticity(2), {"left": (0.0, 0.0), "right": (0.01, 0.0)})
    result = solve(problem, SlowOnRankZero(3), progress=False)
    assert min(result.imbalance) > 1.5  # only rank 0's points cost time
