"""State memory (issue 11 point 9): trial rows without internal variables, recomputed at
commit; committed rows without the fluctuation, derived from the committed state.

The committed internal variables after ``commit`` must be bitwise the rows the micro solve
itself returned (``HistorySolution.internal_row``), for points answered by the elastic
shortcut, by the Newton (direct and Krylov) and for a rate-dependent law whose update
depends on Δt; the reference rows come from separate calls of ``cell.solve`` on copies of
the committed state, not from the store. The derived committed fluctuation is checked
against the Newton's converged one and against the laws' closed-form stresses (J2
isotropic and kinematic, Maxwell), and a Newton started from it against one started from
the stored fluctuation.
"""

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.errors import InputError
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.micro.state import StateStore
from hmm_fenics.point_laws import IN_PLANE, Elastic, J2Plasticity, Maxwell

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


def test_the_store_holds_no_trial_internal_variables_and_no_committed_fluctuation():
    # 8 bytes per float: committed row (3 + 10 000) + trial row (3 + 500), 1 flag byte
    store = StateStore(1000, 10_000, 500, 3)
    assert store.nbytes == 1000 * (8 * (10_003 + 503) + 1)
    assert store.committed.shape == (1000, 10_003) and store.trial.shape == (1000, 503)
    # a full trial row would be 2 × 8 × 10 503 per point
    assert store.nbytes < 1.1 * store.committed.nbytes


def test_a_commit_that_raises_midway_keeps_each_row_whole_and_a_second_commit_finishes():
    """Row by row in place: the rows before the failing one are committed, it and the later
    ones unchanged and still pending; a second commit ends where one commit would have."""
    rng = np.random.default_rng(7)
    store = StateStore(6, 4, 2, 3)
    store.committed[:] = rng.standard_normal(store.committed.shape)
    before = store.committed.copy()
    for i in (0, 2, 3, 5):
        store.write_trial(i, rng.standard_normal(3), rng.standard_normal(2))
    trial = store.trial.copy()
    calls = []

    def fails_at_the_third_row(G, w, row):
        calls.append(len(calls))
        if len(calls) == 3:
            raise RuntimeError("return mapping failed")
        return row + w.sum()

    with pytest.raises(RuntimeError, match="return mapping failed"):
        store.commit(fails_at_the_third_row)
    np.testing.assert_array_equal(store.pending, [False, False, False, True, False, True])
    np.testing.assert_array_equal(store.committed[[1, 3, 4, 5]], before[[1, 3, 4, 5]])
    store.commit(lambda G, w, row: row + w.sum())
    assert not store.pending.any()
    np.testing.assert_array_equal(store.committed[[1, 4]], before[[1, 4]])
    for i in (0, 2, 3, 5):  # each row updated once, from its own committed row
        np.testing.assert_array_equal(store.committed[i, 3:], before[i, 3:] + trial[i, 3:].sum())
        np.testing.assert_array_equal(store.committed[i, :3], trial[i, :3])


def test_a_commit_needs_no_second_copy_of_the_states():
    """tracemalloc over a commit of every row of a 19 MiB store: the extra peak is a few
    rows (the row handed to the update and the one it returns: 2 × 8 × 20 000 bytes = 0.3
    MiB) and NumPy's small temporaries, 1 MiB asked; the old commit built all the new
    internal rows at once (16 MiB)."""
    import tracemalloc

    points, width = 100, 20_000
    store = StateStore(points, width, 50, 3)
    for i in range(points):
        store.write_trial(i, np.full(3, 0.5), np.ones(50))
    tracemalloc.start()
    try:
        store.commit(lambda G, w, row: row + 1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 2**20, peak
    assert (store.committed[:, 3:] == 1.0).all() and (store.committed[:, :3] == 0.5).all()


def test_checkpoints_write_the_states_from_a_view(tmp_path):
    """The checkpoint's state rows of a model that computes its own points are the store's
    memory, read-only (no copy), and a 24 MiB array is written with under 1 MiB of extra
    memory (NumPy's own writer copies 16 MiB chunks to a non-file sink such as the hashing
    one); the bytes are the .npy format NumPy writes and reads."""
    import io
    import tracemalloc

    from hmm_fenics.run.checkpoint import _write_array
    from hmm_fenics.run.restart import committed_rows

    model = HistoryCellModel(cell=None)
    model.store = StateStore(4, 5, 2, 3)
    model.store.committed[:] = np.arange(32.0).reshape(4, 8)
    rows = committed_rows(model)
    assert np.shares_memory(rows, model.store.committed) and not rows.flags.writeable
    big = np.random.default_rng(1).standard_normal((300, 10_000))
    tracemalloc.start()
    try:
        _write_array(tmp_path / "big.npy", big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 2**20, peak
    for array in (big, rows, np.zeros((14, 0)), np.arange(5)):
        _write_array(tmp_path / "a.npy", array)
        expected = io.BytesIO()
        np.lib.format.write_array(expected, np.ascontiguousarray(array), allow_pickle=False)
        assert (tmp_path / "a.npy").read_bytes() == expected.getvalue()
        np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)


def test_a_balanced_migration_holds_at_most_the_counted_copies_of_the_states():
    """tracemalloc over a replan of a balanced model and over the return of its states to
    the owners (a checkpoint), on any number of ranks (on one, no row moves). A replan reads
    the store's view, sends only the rows whose computing rank changes and builds the new
    rows once: its extra peak is the rows that arrive plus the send buffer of those that
    leave (during the exchange) or the new array (while it is filled; the store then keeps
    it and releases the old rows), + one block of the rows that
    stay (copied block by block) + 1 % for the trial rows and the index arrays; the
    return holds the received and the reordered rows (2 copies). Both within
    ``MIGRATION_COPIES``, what run.memory adds to a balanced run's states. The rows keep
    their values and come back to their owners in order."""
    import tracemalloc

    from mpi4py import MPI

    from hmm_fenics.coupling.micro_models import MIGRATION_BLOCK_BYTES, BalancedModel
    from hmm_fenics.parallel.exchange import Exchange
    from hmm_fenics.parallel.schedule import plan
    from hmm_fenics.run.memory import MIGRATION_COPIES, transient_copies

    comm = MPI.COMM_WORLD
    owned, first = 60, 60 * comm.rank
    model = HistoryCellModel(cell=None)
    model.store = StateStore(owned, 20_000, 50, 3)  # 160 kB rows: 9.6 MB, blocks of 7 rows
    mine = np.arange(first, first + owned, dtype=np.float64)[:, None] + np.zeros(
        model.store.committed.shape[1]
    )  # row = its global index in every column
    balanced = BalancedModel(model, comm, mix=False)  # unit costs: every row stays home
    balanced.set_owned_state_rows(mine)
    row_bytes = model.store.committed.itemsize * model.store.committed.shape[1]
    held, sent = len(model.store.committed), balanced.rows_sent
    costs = np.full(owned, 10.0 if comm.rank == 0 else 1.0)  # rank 0 sheds rows to rank 1
    exchange = Exchange(comm, plan(comm, costs, mix=False))
    tracemalloc.start()
    try:
        balanced._replan(exchange)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    new, left = len(model.store.committed), balanced.rows_sent - sent
    arrived = new - (held - left)
    block = min(MIGRATION_BLOCK_BYTES // row_bytes + 1, held) * row_bytes  # staying rows' copy
    bound = (max(left, new) + arrived) * row_bytes
    assert peak <= 1.01 * bound + block, (peak / row_bytes, new, arrived, held)
    assert bound <= MIGRATION_COPIES * max(new, held) * row_bytes
    if comm.size > 1:  # the uneven costs move rows: the test sees a real migration
        assert comm.allreduce(balanced.rows_sent - sent) > 0
    committed = model.store.committed
    assert (committed == committed[:, :1]).all()  # whole rows travelled
    tracemalloc.start()
    try:
        back = balanced.owned_state_rows()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(back, mine)  # bitwise, in the owner's order
    assert peak <= 1.01 * MIGRATION_COPIES * owned * row_bytes, peak / (owned * row_bytes)
    assert transient_copies(balanced, resuming=False) == MIGRATION_COPIES
    assert transient_copies(model, resuming=False) == 0


def test_a_history_model_stores_gradient_and_fluctuation_as_its_trial(inclusion2d):
    model = model_of(inclusion2d, J2Plasticity(*J2))
    model.respond(np.array([[0.02, 0.0, 0.0], [0.0, 0.015, 0.01], [0.01, 0.01, 0.0]]), POINTS)
    cell, store = model.cell, model.store
    assert model.trial_width() == 3 + cell.n_unknowns
    assert store.trial.shape == (3, 3 + cell.n_unknowns) and store.pending.all()
    assert model.state_width() == 3 + cell.width_internal == store.committed.shape[1]
    raw = 3 * 8 * cell.width_internal  # the internal variables alone
    held = 3 * (8 * (3 + cell.n_unknowns + 3 + cell.width_internal) + 1)
    assert store.nbytes == held
    assert store.nbytes / raw < 1 + 1.01 * (6 + cell.n_unknowns) / cell.width_internal


def solve_copies(cell, G, rows, dt):
    """The solve's own answers from copies of committed rows ``(n, width)``."""
    n = cell.physics.n_components
    return [
        cell.solve(g.copy(), row[n:].copy(), row[:n].copy(), dt)
        for g, row in zip(G, rows, strict=True)
    ]


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
    n = 3
    trial = model.store.trial.copy()
    model.commit()
    after = model.state_rows()
    assert after.shape == (3, n + cell.width_internal)  # gradient | internal: no fluctuation
    for i, solution in enumerate(expected):
        assert np.array_equal(after[i, n:], solution.internal_row)
        assert np.array_equal(trial[i, n:], solution.fluctuation)
        assert np.array_equal(after[i, :n], second[i])
    changed = ~np.all(after[:, n:] == before[:, n:], axis=1)
    assert changed[1:].all()  # the step moved the internal variables of the loaded points
    if isinstance(law, J2Plasticity):
        p = after[:, n:][:, cell.offsets["matrix"][0] + 12 :: law.n_vars]
        p_before = before[:, n:][:, cell.offsets["matrix"][0] + 12 :: law.n_vars]
        assert (p[1] > p_before[1]).any()  # a plastic step
        methods = {s.method for s in expected}
        assert methods == (
            {"newton"} if options.get("shortcut") is False else {"shortcut", "newton"}
        )
    else:  # Δt enters the update: a recompute with another Δt would differ
        other = cell.internal_after(second[1], trial[1, n:], before[1, n:], 2 * dt)
        assert not np.array_equal(other, after[1, n:])


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


LAWS = {
    "j2-isotropic": J2Plasticity(3.0, 0.35, 0.02, 0.3, 0.0),
    "j2-kinematic": J2Plasticity(3.0, 0.35, 0.02, 0.0, 0.5),
    "maxwell": Maxwell(*PRONY),
}


def committed_state(rve, law):
    """A cell (Newton only) after a load and a reverse step: (cell, G_c, row, converged w)."""
    cell = history_cell_problem(
        hf.Elasticity(2), rve, {"matrix": law, "inclusion": Elastic(*GLASS)}, shortcut=False
    )
    row, committed = np.zeros(cell.width_internal), np.zeros(3)
    for G in (np.array([0.02, -0.005, 0.01]), np.array([-0.01, 0.02, 0.005])):
        solution = cell.solve(G, row, committed, 0.3)
        row, committed = solution.internal_row, G
    if isinstance(law, J2Plasticity):
        assert solution.plastic_strain > 1e-2  # a plastic committed state
    return cell, committed, row, solution.fluctuation


def equilibrium_residual(cell, G, w, row):
    """‖Pᵀ r‖ / ‖Σ w σ‖ with σ the laws' closed-form stress at the committed internal
    variables (J2: C(ε − εᵖ); Maxwell: C∞ ε + Σ σ_i), plane strain ε33 = 0."""
    eps = cell.strains(G, w)
    stress = np.empty_like(eps)
    for name, law in cell.laws.items():
        points = cell.phase_points[name]
        strain = np.zeros((points.stop - points.start, 6))
        strain[:, IN_PLANE] = eps[points]
        stress[points] = law.stress(strain, cell.phase_state(name, row))[:, IN_PLANE]
    r = cell.strain_operator.T @ (cell.weights[:, None] * stress).ravel()
    return np.linalg.norm(cell.free_part(r)) / np.linalg.norm(cell.weights @ stress)


@pytest.mark.parametrize("name", LAWS)
def test_the_derived_committed_fluctuation_is_the_converged_one(inclusion2d, name):
    """The committed fluctuation the store does not keep, from (G_c, row) by one affine
    solve, is the Newton's converged one: the two differ by K_p⁻¹ r_c, r_c the residual the
    Newton stopped at (tolerance 1e-10 relative, times the condition of K_p; the Newton is
    quadratic, so measured ≤ 2e-13 here, 5.7e-10 on a 3D periodic J2 cell): 1e-8 asked. The derived state is in
    equilibrium with the laws' own stresses to round-off (an exact linear solve: 2e-14
    measured; 1e-12 asked)."""
    cell, committed, row, converged = committed_state(inclusion2d, LAWS[name])
    derived = cell.committed_fluctuation(committed, row)
    assert np.linalg.norm(derived - converged) <= 1e-8 * np.linalg.norm(converged)
    assert equilibrium_residual(cell, committed, derived, row) <= 1e-12
    # not a tautology: another gradient gives another fluctuation
    other = cell.committed_fluctuation(1.1 * committed, row)
    assert np.linalg.norm(other - converged) > 1e-3 * np.linalg.norm(converged)


@pytest.mark.parametrize("name", LAWS)
def test_a_newton_from_the_derived_start_answers_as_from_the_stored_one(inclusion2d, name):
    """The next step (flowing for J2) from the derived committed fluctuation and from the
    stored converged one: both Newtons converge to the same discrete solution, each to its
    1e-10 tolerance (quadratic: far below at the last step), so flux and tangent agree to
    1e-9 relative (measured ≤ 4e-15) and the iterations are the same."""
    cell, committed, row, converged = committed_state(inclusion2d, LAWS[name])
    G = np.array([0.03, 0.0, 0.02])
    derived = cell.solve(G, row, committed, 0.3)
    stored = cell.solve(G, row, committed, 0.3, start=converged)
    assert derived.method == stored.method == "newton"
    assert derived.iterations == stored.iterations
    scale = np.abs(stored.flux).max()
    np.testing.assert_allclose(derived.flux, stored.flux, rtol=0, atol=1e-9 * scale)
    scale = np.abs(stored.tangent).max()
    np.testing.assert_allclose(derived.tangent, stored.tangent, rtol=0, atol=1e-9 * scale)
    if isinstance(LAWS[name], J2Plasticity):
        assert derived.plastic_strain > 1e-2


def test_the_2d_bench_cell_keeps_its_states_in_at_most_1_2_times_their_internal_bytes():
    """bench_history.py --memory-only's 2D cell (J2 matrix, glass inclusion, h = 0.03):
    store bytes / (points × internal floats × 8) = 1 + (2n + n_unknowns)/n_internal + the
    flags, 1.109 (it was 1.217 with the committed fluctuation); the target is ≤ 1.2."""
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.03))
    model = model_of(rve, J2Plasticity(*J2))
    cell, points = model.cell, 100
    model.set_state_rows(np.zeros((points, model.state_width())))
    store = model.store
    raw = points * 8 * cell.width_internal
    ratio = store.nbytes / raw
    assert ratio == pytest.approx(1 + (6 + cell.n_unknowns + 1 / 8) / cell.width_internal)
    assert ratio <= 1.2


def test_a_history_cell_refuses_a_law_without_an_affine_predictor(inclusion2d):
    class NoPredictor:
        """A law with an update but no ``predictor``: its committed fluctuation is unknown."""

        n_vars = 1

        def update(self, strain, state, dt):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(InputError, match=r"materials\.matrix: .*NoPredictor.*predictor"):
        history_cell_problem(
            hf.Elasticity(2), inclusion2d, {"matrix": NoPredictor(), "inclusion": Elastic(*GLASS)}
        )


class TextbookMaxwell(Maxwell):
    """Maxwell with the gain (τ/Δt)(1 − e^{−Δt/τ}) without its Δt = 0 limit: exact for every
    Δt > 0, 0/0 at Δt = 0 (the review's law: its derived fluctuation was NaN and MUMPS ran
    out of workspace on it)."""

    def _factors(self, dt):
        ratio = dt / self.times
        return np.exp(-ratio), -np.expm1(-ratio) / ratio


class NoPredictorAfterFlow(J2Plasticity):
    """J2 whose predictor gives NaN at Δt = 0 once a point flowed (passes the virgin check)."""

    def predictor(self, state, dt):
        C, sigma0 = super().predictor(state, dt)
        return C, np.where(dt == 0 and (state[:, 12] > 0).any(), np.nan, sigma0)


def test_a_law_undefined_at_dt_0_is_refused_naming_it(inclusion2d):
    """Δt = 0 derives the committed fluctuation (point_laws.Predictable): a law that cannot
    give it is refused when the cell is built (a virgin state) or, when only a later state
    fails, by the derivation, with the phase, the law and Δt named, not left to the linear
    solver."""
    laws = {"matrix": J2Plasticity(*J2), "inclusion": TextbookMaxwell(20.0, 0.2, ((40.0, 0.1),))}
    with pytest.raises(InputError, match=r"materials\.inclusion: TextbookMaxwell\.predictor\(state, dt = 0\) gave a non-finite C_p"):  # fmt: skip
        history_cell_problem(hf.Elasticity(2), inclusion2d, laws)
    textbook = TextbookMaxwell(*PRONY)  # fine for Δt > 0
    assert np.isfinite(textbook.predictor(np.zeros((2, textbook.n_vars)), 0.3)[1]).all()
    cell = history_cell_problem(
        hf.Elasticity(2),
        inclusion2d,
        {"matrix": NoPredictorAfterFlow(*J2), "inclusion": Elastic(*GLASS)},
        shortcut=False,
    )
    G = np.array([0.02, -0.005, 0.01])
    solution = cell.solve(G, np.zeros(cell.width_internal), np.zeros(3), 1.0)  # from zero
    assert solution.plastic_strain > 0
    with pytest.raises(InputError, match=r"materials\.matrix: NoPredictorAfterFlow\.predictor\(state, dt = 0\) gave a non-finite σ₀"):  # fmt: skip
        cell.solve(1.1 * G, solution.internal_row, G, 1.0)
