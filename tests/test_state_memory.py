"""State memory (issue 11 point 9): trial rows without internal variables, recomputed at commit.

The committed internal variables after ``commit`` must be bitwise the rows the micro solve
itself returned (``HistorySolution.internal_row``), for points answered by the elastic
shortcut, by the Newton (direct and Krylov) and for a rate-dependent law whose update
depends on Δt; the reference rows come from separate calls of ``cell.solve`` on copies of
the committed state, not from the store.
"""

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.micro.state import StateStore
from hmm_fenics.point_laws import Elastic, J2Plasticity, Maxwell

GLASS = (70.0, 0.2)
J2 = (3.0, 0.35, 0.02, 0.3, 0.2)  # E, nu, sigma_y, H_iso, H_kin > 0: kinematic hardening
PRONY = (3.0, 0.35, ((2.0, 0.5), (1.0, 5.0)))  # E, nu, (E_i, tau_i)
POINTS = np.zeros((3, 2))


@pytest.fixture(scope="module")
def inclusion2d():
    return hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))


def model_of(rve, law, **options):
    cell = history_cell_problem(
        hf.Elasticity(2), rve, {"matrix": law, "inclusion": Elastic(*GLASS)}, **options
    )
    return HistoryCellModel(cell)


def test_the_store_holds_no_trial_internal_variables():
    # 8 bytes per float: committed row (3 + 500 + 10 000) + trial row (3 + 500), 1 flag byte
    store = StateStore(1000, 10_000, 500, 3)
    assert store.nbytes == 1000 * (8 * (10_503 + 503) + 1)
    assert store.trial.shape == (1000, 503)
    # a full trial row would be 2 × 8 × 10 503 per point
    assert store.nbytes < 1.1 * store.committed.nbytes


def test_a_commit_that_raises_midway_leaves_every_committed_row_unchanged():
    rng = np.random.default_rng(7)
    store = StateStore(5, 4, 2, 3)
    store.committed[:] = rng.standard_normal(store.committed.shape)
    before = store.committed.copy()
    for i in (0, 2, 3):
        store.write_trial(i, rng.standard_normal(3), rng.standard_normal(2))
    calls = []

    def fails_at_the_third_row(G, w, row):
        calls.append(len(calls))
        if len(calls) == 3:
            raise RuntimeError("return mapping failed")
        return row + 1.0

    with pytest.raises(RuntimeError, match="return mapping failed"):
        store.commit(fails_at_the_third_row)
    np.testing.assert_array_equal(store.committed, before)  # rows 0 and 2 not half-committed
    np.testing.assert_array_equal(store.pending, [True, False, True, True, False])
    # the same trials commit whole once the update succeeds
    store.commit(lambda G, w, row: row + 1.0)
    np.testing.assert_array_equal(store.committed[[1, 4]], before[[1, 4]])
    np.testing.assert_array_equal(store.committed[[0, 2, 3], 5:], before[[0, 2, 3], 5:] + 1.0)
    np.testing.assert_array_equal(store.committed[[0, 2, 3], :5], store.trial[[0, 2, 3]])
    assert not store.pending.any()


def test_a_history_model_stores_gradient_and_fluctuation_as_its_trial(inclusion2d):
    model = model_of(inclusion2d, J2Plasticity(*J2))
    model.respond(np.array([[0.02, 0.0, 0.0], [0.0, 0.015, 0.01], [0.01, 0.01, 0.0]]), POINTS)
    cell, store = model.cell, model.store
    assert model.trial_width() == 3 + cell.n_unknowns
    assert store.trial.shape == (3, 3 + cell.n_unknowns) and store.pending.all()
    raw = 3 * 8 * cell.width_internal  # the internal variables alone
    held = 3 * (8 * (2 * (3 + cell.n_unknowns) + cell.width_internal) + 1)
    assert store.nbytes == held
    assert store.nbytes / raw < 1 + 2.01 * (3 + cell.n_unknowns) / cell.width_internal


def solve_copies(cell, G, rows, dt):
    """The solve's own answers from copies of committed rows ``(n, width)``."""
    n = cell.physics.n_components
    out = []
    for g, row in zip(G, rows, strict=True):
        w = row[n : n + cell.n_unknowns].copy()
        out.append(cell.solve(g.copy(), row[n + cell.n_unknowns :].copy(), w, dt))
    return out


@pytest.mark.parametrize(
    "law, options, dt",
    [
        (J2Plasticity(*J2), {}, 1.0),
        (J2Plasticity(*J2), {"shortcut": False}, 1.0),
        (J2Plasticity(*J2), {"linear_solver": "krylov"}, 1.0),
        (Maxwell(*PRONY), {}, 0.3),
        (Maxwell(*PRONY), {"shortcut": False}, 0.3),
    ],
    ids=["j2-shortcut", "j2-newton", "j2-krylov", "maxwell-shortcut", "maxwell-newton"],
)
def test_commit_recomputes_bitwise_the_rows_the_solve_returned(inclusion2d, law, options, dt):
    model = model_of(inclusion2d, law, **options)
    cell = model.cell
    first = np.array([[0.02, -0.005, 0.01], [0.0, 0.015, 0.01], [0.012, 0.01, 0.0]])
    model.begin_step(dt, dt)
    model.respond(first, POINTS)
    model.commit()
    # step 2: point 0 unloads a little (elastic), point 1 goes on flowing, point 2 reverses
    second = np.array([0.95 * first[0], [0.0, 0.03, 0.02], [-0.01, -0.01, 0.0]])
    before = model.state_rows()
    expected = solve_copies(cell, second, before, dt)
    model.begin_step(2 * dt, dt)
    model.respond(second, POINTS)
    model.commit()
    after = model.state_rows()
    n, nu = 3, cell.n_unknowns
    for i, solution in enumerate(expected):
        assert np.array_equal(after[i, n + nu :], solution.internal_row)
        assert np.array_equal(after[i, n : n + nu], solution.fluctuation)
        assert np.array_equal(after[i, :n], second[i])
    changed = ~np.all(after[:, n + nu :] == before[:, n + nu :], axis=1)
    assert changed[1:].all()  # the step moved the internal variables of the loaded points
    if isinstance(law, J2Plasticity):
        p = after[:, n + nu :][:, cell.offsets["matrix"][0] + 12 :: law.n_vars]
        p_before = before[:, n + nu :][:, cell.offsets["matrix"][0] + 12 :: law.n_vars]
        assert (p[1] > p_before[1]).any()  # a plastic step
        methods = {s.method for s in expected}
        assert methods == (
            {"newton"} if options.get("shortcut") is False else {"shortcut", "newton"}
        )
    else:  # Δt enters the update: a recompute with another Δt would differ
        other = cell.internal_after(second[1], after[1, n : n + nu], before[1, n + nu :], 2 * dt)
        assert not np.array_equal(other, after[1, n + nu :])


def test_rollback_and_a_second_commit_leave_the_committed_rows(inclusion2d):
    # Maxwell relaxes at every update: a commit that updated twice would show
    model = model_of(inclusion2d, Maxwell(*PRONY))
    G = np.array([[0.01, 0.0, 0.0], [0.0, 0.01, 0.005], [0.004, 0.0, 0.01]])
    model.begin_step(0.5, 0.5)
    model.respond(G, POINTS)
    model.commit()
    committed = model.state_rows()
    model.commit()  # nothing pending: nothing changes
    np.testing.assert_array_equal(model.state_rows(), committed)
    model.begin_step(1.0, 0.5)
    model.respond(3 * G, POINTS)
    model.rollback()
    model.commit()
    np.testing.assert_array_equal(model.state_rows(), committed)
    # migrated committed rows commit the same next step as the rows that stayed
    moved = HistoryCellModel(model.cell)
    moved.set_state_rows(committed)
    moved.begin_step(1.0, 0.5)
    for m in (model, moved):
        m.respond(2 * G, POINTS)
        m.commit()
    np.testing.assert_array_equal(moved.state_rows(), model.state_rows())
    assert not np.array_equal(model.state_rows(), committed)
