"""States under the balanced schedule: each row moves once, straight to its new computing rank.

The fake history model (``history_fakes.SpringModel``) has closed-form answers: a balanced
model must give exactly the owner-computes answers and states, whatever the routing.
"""

from mpi4py import MPI

import numpy as np
import pytest
from history_fakes import SpringModel

from hmm_fenics.coupling.micro_models import BalancedModel
from hmm_fenics.parallel.exchange import Exchange
from hmm_fenics.parallel.schedule import plan


def points_of_this_rank(comm):
    """7 + 5 r points on rank r (uneven, so that the plans move rows), global ids, gradients."""
    counts = [7 + 5 * r for r in range(comm.size)]
    n = counts[comm.rank]
    ids = sum(counts[: comm.rank]) + np.arange(n)
    gradients = 0.01 * np.cos(ids[:, None] + np.arange(3))  # beyond yield: plastic states
    return n, ids, gradients


def step(models, gradients, ids, time):
    answers = []
    for model in models:
        model.begin_step(time, 1.0)
        answers.append(model.respond(gradients * time, np.zeros((len(ids), 2)), ids))
        model.commit()
    return answers


def test_a_replan_sends_each_row_once_from_its_old_to_its_new_computing_rank():
    """The rows sent to another rank by a replan are those of the points whose computing rank
    changes (before: every row computed away from its owner went home and out again, up to
    2 (P − 1)/P of all rows), and the states still travel with their points."""
    comm = MPI.COMM_WORLD
    n, ids, gradients = points_of_this_rank(comm)
    owner, balanced = SpringModel(3), BalancedModel(SpringModel(3), comm, replan_above=np.inf)
    step([owner, balanced], gradients, ids, 1.0)
    first = balanced.exchange
    costs = np.where(np.arange(n) < n // 2, 10.0, 1.0) * (3.0 if comm.rank == 0 else 1.0)
    second = Exchange(comm, plan(comm, costs))
    changed = comm.allreduce(int(np.count_nonzero(first.destinations != second.destinations)))
    if comm.size > 1:
        assert changed > 0  # the skewed costs re-route points: the case tested
    sent = balanced.rows_sent
    balanced._replan(second)
    assert comm.allreduce(balanced.rows_sent - sent) == changed
    np.testing.assert_array_equal(balanced.owned_state_rows(), owner.state_rows())
    step([owner, balanced], gradients, ids, 2.0)
    a, b = step([owner, balanced], gradients, ids, -1.0)  # reverse loading: the history counts
    np.testing.assert_array_equal(b.flux, a.flux)  # the same arithmetic per point: bitwise
    np.testing.assert_array_equal(b.tangent, a.tangent)
    np.testing.assert_array_equal(balanced.owned_state_rows(), owner.state_rows())


def test_a_restore_with_unknown_costs_moves_the_states_once():
    """A resume without known costs plans from unit weights and keeps them as the planned
    costs: the first answer uses that routing (before, it planned again from the same unit
    costs and moved the rows a second time)."""
    comm = MPI.COMM_WORLD
    n, ids, gradients = points_of_this_rank(comm)
    rows = np.random.default_rng(comm.rank).uniform(-1e-3, 1e-3, (n, 6))
    owner, balanced = SpringModel(3), BalancedModel(SpringModel(3), comm)
    owner.set_state_rows(rows)
    balanced.set_owned_state_rows(rows, None)
    restored = balanced.exchange
    sent = comm.allreduce(balanced.rows_sent)
    assert sent == comm.allreduce(int(np.count_nonzero(restored.destinations != comm.rank)))
    a, b = step([owner, balanced], gradients, ids, 1.0)
    assert balanced.exchange is restored  # no second plan
    assert comm.allreduce(balanced.rows_sent) == sent  # each row moved once
    np.testing.assert_array_equal(b.flux, a.flux)
    np.testing.assert_array_equal(balanced.owned_state_rows(), owner.state_rows())


def test_a_failure_placing_the_moved_rows_on_one_rank_is_raised_on_every_rank(monkeypatch):
    """After the exchange, a rank builds its new rows alone (the array may not fit): a failure
    there on the last rank is raised on every rank with its message, and none waits in the
    next collective (before: the other ranks hung in the state hand-over)."""
    comm = MPI.COMM_WORLD
    n, ids, gradients = points_of_this_rank(comm)
    balanced = BalancedModel(SpringModel(3), comm, replan_above=np.inf)
    step([balanced], gradients, ids, 1.0)
    place = BalancedModel._place

    def failing(*args):
        if comm.rank == comm.size - 1:
            raise MemoryError("no room for the new rows")
        return place(*args)

    monkeypatch.setattr(BalancedModel, "_place", staticmethod(failing))
    costs = np.where(np.arange(n) < n // 2, 10.0, 1.0) * (3.0 if comm.rank == 0 else 1.0)
    with pytest.raises(MemoryError) as failure:
        balanced._replan(Exchange(comm, plan(comm, costs)))
    messages = comm.allgather(str(failure.value))
    assert len(set(messages)) == 1 and "no room for the new rows" in messages[0]
