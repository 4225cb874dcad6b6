"""FE² with the real history cell (J2, Maxwell) against references it did not produce.

- a homogeneous J2 cell (both phases the same law: zero fluctuation) on a macro part equals
  the plain DOLFINx plasticity solve of ``plain_plasticity`` (its own return mapping) along a
  load/unload/reverse path: reactions and displacement;
- the macro Newton converges quadratically in plastic steps (homogeneous and composite
  cells), and a modified Newton with the elastic tangent does not (the negative control);
- owner computes and balanced schedules with forced replans give the same cyclic answers;
- energy balance: external work = stored + dissipated up to the time-integration error, which
  shrinks with the step; a homogeneous Maxwell cell relaxes as the Prony series;
- a failed attempt (the real micro Newton stopped early) leaves the committed states alone:
  the cut-back run equals the run with the smaller step.

Serial and under ``mpirun -n 2 / 4 python -m mpi4py -m pytest`` (every test is collective).
"""

import itertools
import math
from functools import cache

from mpi4py import MPI

import numpy as np
import pytest
from plain_plasticity import BOTTOM, LEFT, RIGHT, TOP, solve_plasticity, unit_box

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import BalancedModel
from hmm_fenics.macro.mesh import MacroMesh, macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.micro.nonlinear import MicroNewtonError
from hmm_fenics.point_laws import Elastic, J2Plasticity, Maxwell
from hmm_fenics.stepping import LoadPath, load_path, march

MATRIX = (3.0, 0.35, 0.02, 0.3, 0.2)
"""E, ν, σ_y, H_iso, H_kin of the J2 matrix (epoxy-like units; yield strain 0.0067)."""
GLASS = (70.0, 0.2)
CYCLE = [(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (3.0, -1.0)]
"""Load, unload, reverse."""
NAMES = {"left": LEFT, "right": RIGHT, "bottom": BOTTOM, "top": TOP}


def unit_square(n: int, comm=MPI.COMM_WORLD) -> MacroMesh:
    """The unit square, n × n × 2 triangles, on ``comm``, as a macro mesh."""
    msh, tags = unit_box(comm, 2, n)
    return MacroMesh(msh, tags, dict(NAMES))


@cache
def homogeneous_cell():
    """A coarse laminate whose two layers are the same J2 law: the fluctuation is zero."""
    rve = hf.build_rve(hf.RVESpec("laminate", 2, 0.5, 0.5))
    law = J2Plasticity(*MATRIX)
    return history_cell_problem(hf.Elasticity(2), rve, dict.fromkeys(rve.phases, law))


def composite_cell(rtol: float = 1e-10):
    """A coarse glass disk (30 %) in the J2 matrix: ~100 cells, a real fluctuation."""
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.3))
    laws = {"matrix": J2Plasticity(*MATRIX), "inclusion": Elastic(*GLASS)}
    return history_cell_problem(hf.Elasticity(2), rve, laws, rtol=rtol)


def reaction_table(records, names):
    """(steps, boundaries × 2) reactions of march records (None → 0: free components)."""
    return np.array(
        [[f or 0.0 for name in names for f in record["reactions"][name]] for record in records]
    )


def owned_u(problem):
    V = problem.V
    return problem.u.x.array[: V.dofmap.index_map.size_local * V.dofmap.index_map_bs]


# -- 1. a homogeneous cell = the plain DOLFINx plasticity solve --------------------------------


def fe2_and_plain(mesh, dirichlet, path, degree, quadrature_degree):
    """March FE² with the homogeneous J2 cell and solve the same part with plain_plasticity.

    Both Newtons stop far below the compared 1e-8 (rtol 1e-12 of the first residual).
    """
    problem = MacroProblem(
        mesh, hf.Elasticity(2), dirichlet, quadrature_degree=quadrature_degree, degree=degree
    )
    model = HistoryCellModel(homogeneous_cell())
    increments = march(problem, model, path, rtol=1e-12, atol=1e-15, progress=False)
    factors = [path.factor(t) for t in path.times]
    by_tag = {mesh.boundaries[name]: value for name, value in dirichlet.items()}
    plain = solve_plasticity(
        mesh.mesh,
        mesh.facet_tags,
        by_tag,
        *MATRIX,
        factors=factors,
        quadrature_degree=quadrature_degree,
        degree=degree,
        rtol=1e-12,
        atol=1e-15,
    )
    return problem, increments, plain


def assert_same_as_plain(mesh, dirichlet, problem, increments, plain):
    names = list(dirichlet)
    ours = reaction_table([i.record for i in increments], names)
    theirs = np.array(
        [np.concatenate([step["reactions"][mesh.boundaries[n]] for n in names]) for step in plain]
    )
    # the prescribed components (a free one's sum is not a reaction: MacroProblem gives None)
    prescribed = [g is not None for name in names for g in dirichlet[name]]
    ours, theirs = ours[:, prescribed], theirs[:, prescribed]
    scale = np.abs(theirs).max()
    # the same discrete problem solved twice with different codes: round-off (~1e-15) and
    # the Newton stops (1e-12 relative) apart, so 1e-8 of the largest reaction has margin
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8 * scale)
    u, reference = owned_u(problem), plain[-1]["u"]
    u_scale = MPI.COMM_WORLD.allreduce(float(np.abs(reference).max(initial=0)), op=MPI.MAX)
    np.testing.assert_allclose(u, reference, rtol=0, atol=1e-8 * u_scale)
    error = MPI.COMM_WORLD.allreduce(float(np.abs(ours - theirs).max()), op=MPI.MAX) / scale
    return error


@pytest.fixture(scope="module")
def clamped_cycle():
    """A unit square clamped on the left, the right side moved along x (P2, 3-point rule)."""
    mesh = unit_square(4)
    dirichlet = {"left": (0.0, 0.0), "right": (0.03, 0.0)}
    path = load_path(CYCLE, steps=2)
    return mesh, dirichlet, *fe2_and_plain(mesh, dirichlet, path, 2, 2)


def test_homogeneous_cell_fe2_equals_the_plain_dolfinx_plasticity_solve(clamped_cycle):
    mesh, dirichlet, problem, increments, plain = clamped_cycle
    # the loop really is plastic and reversed: plastic strain grows in the reverse branch
    p_max = [step["p_max"] for step in plain]
    assert p_max[1] > 0.01 and p_max[-1] > p_max[3] + 0.01
    error = assert_same_as_plain(mesh, dirichlet, problem, increments, plain)
    assert error < 1e-8
    assert all(i.cutbacks == 0 for i in increments)


@pytest.mark.slow
def test_homogeneous_cell_fe2_equals_plain_on_the_plate_with_hole():
    """The plate with a hole (symmetry planes, pulled right side), 7 steps, P1."""
    mesh = macro_mesh("plate-with-hole", 0.3, params={"L": 1.0, "R": 0.3})
    dirichlet = {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.02, None)}
    path = load_path([(0, 0), (1, 1), (2, -1)], steps=[3, 4])
    problem, increments, plain = fe2_and_plain(mesh, dirichlet, path, 1, 2)
    assert plain[-1]["p_max"] > 0.1
    assert assert_same_as_plain(mesh, dirichlet, problem, increments, plain) < 1e-8


# -- 2. quadratic convergence of the macro Newton in plastic steps -----------------------------


# Newton's estimate r_{k+1} ≲ (L_J/2) |J⁻¹ r_k|²: the tangent of a plastic point changes by
# O(E) when its strain moves by O(ε_y) = O(σ_y/E), i.e. when u moves by O(h σ_y/E) (h the
# element size), so L_J ~ E² / (h σ_y) while |J⁻¹| ~ 1/E (unit square, unit thickness):
# r_{k+1} ≲ r_k² / (2 h σ_y). C = 1 / (h σ_y) (twice that) is asserted: r_{k+1} ≤ r_k² /
# (h σ_y). A linearly converging iteration (r_{k+1} = ρ r_k) breaks it once r_k < ρ h σ_y.
SIGMA_Y = MATRIX[2]
FLOOR = 1e-14
"""Residuals below are round-off (assembly of forces ~1e-2: ~1e-17) and are not compared."""


def newton_bound(residuals, scale, floor=FLOOR):
    """Newton's constant and order over the residuals above ``floor``.

    Returns max_k r_{k+1} / (r_k² / scale), the number of such ratios, and the order
    estimate log(r_{k+1}/r_k) / log(r_k/r_{k−1}) of the last three (None with fewer).
    """
    r = [x for x in residuals if x > floor]
    ratios = [b / (a * a / scale) for a, b in itertools.pairwise(r)]
    order = math.log(r[-1] / r[-2]) / math.log(r[-2] / r[-3]) if len(r) >= 3 else None
    return max(ratios), len(ratios), order


def test_macro_newton_converges_quadratically_in_the_plastic_steps(clamped_cycle):
    _, _, _, increments, plain = clamped_cycle
    h = 0.25
    for k in (1, 4, 5):  # steps 2, 5, 6: continued loading beyond yield, the last reversed
        residuals = increments[k].record["residuals"]
        ratio, count, _ = newton_bound(residuals, h * SIGMA_Y)
        assert count >= 2 and ratio <= 1.0, (k, ratio, residuals)
        # the reference solver (its own consistent tangent) converges alike
        assert newton_bound(plain[k]["residuals"][1:], h * SIGMA_Y)[0] <= 1.0


def test_composite_cell_macro_newton_converges_quadratically():
    """The composite cell, clamped square pulled to 3× the matrix yield strain in 2 steps.

    Negative control: the same run with the elastic macro tangent of the first response
    (a modified Newton, linear) breaks the bound by orders of magnitude.
    """

    def run(model, stretch, steps):
        problem = MacroProblem(
            unit_square(2),
            hf.Elasticity(2),
            {"left": (0.0, 0.0), "right": (stretch, 0.0)},
            quadrature_degree=1,
        )
        path = load_path([(0.0, 0.0), (1.0, 1.0)], steps=steps)
        return march(
            problem, model, path, rtol=1e-12, atol=1e-15, max_iterations=60, progress=False
        )

    model = HistoryCellModel(composite_cell())
    increments = run(model, 0.02, 2)
    plastic = MPI.COMM_WORLD.allreduce(float(model.averages()["plastic_strain"].max()), MPI.MAX)
    assert plastic > 0.01  # well beyond first yield in the matrix
    for increment in increments:
        residuals = increment.record["residuals"]
        ratio, count, order = newton_bound(residuals, 0.5 * SIGMA_Y)
        assert count >= 2 and ratio <= 1.0, (increment.step, ratio, residuals)
        assert order is not None and order > 1.6, (order, residuals)  # 2: quadratic
        assert increment.record["micro_iterations"]["max"] >= 3  # real micro Newton work
    modified = run(ElasticTangent(composite_cell()), 0.01, 1)[0].record["residuals"]
    ratio, count, order = newton_bound(modified, 0.5 * SIGMA_Y)
    assert count > 10 and ratio > 1e3 and order is not None and order < 1.3


class ElasticTangent(HistoryCellModel):
    """The real history model answering with the macro tangent of its first response."""

    tangent = None

    def respond(self, gradients, points, ids=None):
        response = super().respond(gradients, points, ids)
        if self.tangent is None:
            self.tangent = response.tangent.copy()  # the predictor's, at u = 0: elastic
        return type(response)(response.flux, self.tangent.copy())


# -- 3. owner computes = balanced with replans, cyclic, any number of ranks --------------------


class SkewedCosts(HistoryCellModel):
    """The real history model reporting 20× its measured cost for points with x > 0.6.

    Only the balancing plan sees ``last_costs``: the skew makes it move points between
    ranks (the measured costs of the equal cells are nearly even), the answers are not
    touched.
    """

    def respond(self, gradients, points, ids=None):
        response = super().respond(gradients, points, ids)
        assert self.last_costs is not None
        self.last_costs *= np.where(points[:, 0] > 0.6, 20.0, 1.0)
        return response


def cyclic_composite(balanced: bool, comm=MPI.COMM_WORLD):
    problem = MacroProblem(
        unit_square(3, comm),
        hf.Elasticity(2),
        {"left": (0.0, 0.0), "right": (0.02, 0.005)},
        quadrature_degree=1,
    )
    inner = SkewedCosts(composite_cell())
    model = BalancedModel(inner, comm, replan_above=1e-9) if balanced else inner
    moves = []  # per replan: (the routing, state rows this rank sent to another rank)
    if balanced:
        original = model._replan

        def counting(exchange):
            sent = model.rows_sent
            original(exchange)
            moves.append((exchange.destinations.copy(), model.rows_sent - sent))

        model._replan = counting
    path = load_path([(0, 0), (1, 1), (2, -1), (3, 0)], steps=2)
    increments = march(problem, model, path, rtol=1e-12, atol=1e-15, progress=False)
    return problem, increments, moves


def test_cyclic_path_owner_equals_balanced_with_replans():
    owner_problem, owner, _ = cyclic_composite(False)
    balanced_problem, balanced, moves = cyclic_composite(True)
    assert len(moves) > 10  # a replan at every respond
    if MPI.COMM_WORLD.size > 1:  # the measured costs really re-routed points and their states
        first = moves[0][0]  # the unit-cost plan
        rerouted = any(not np.array_equal(routing, first) for routing, _ in moves[1:])
        assert MPI.COMM_WORLD.allreduce(rerouted, op=MPI.LOR)
        assert MPI.COMM_WORLD.allreduce(sum(sent for _, sent in moves[1:])) > 0
    names = ["left", "right"]
    a = reaction_table([i.record for i in owner], names)
    b = reaction_table([i.record for i in balanced], names)
    # the same arithmetic per point on whichever rank computes it: round-off of the sums
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-10 * np.abs(a).max())
    for x, y in zip(owner, balanced, strict=True):
        for key in ("external_work", "internal_work", "stored_energy", "dissipated_energy"):
            assert y.record[key] == pytest.approx(x.record[key], rel=1e-10, abs=1e-16), key
        assert y.record["iterations"] == x.record["iterations"]
        assert y.record["micro_iterations"] == x.record["micro_iterations"]
    u = owned_u(owner_problem)
    np.testing.assert_allclose(owned_u(balanced_problem), u, rtol=0, atol=1e-10 * 0.02)
    assert owner[-1].record["dissipated_energy"] > 0
    # a J2 matrix and an elastic glass: all of it is plastic
    assert owner[-1].record["plastic_dissipation"] == owner[-1].record["dissipated_energy"]
    assert owner[-1].record["viscous_dissipation"] == 0.0
    if MPI.COMM_WORLD.size > 1:  # and the same as one rank alone (each rank solves it)
        _, serial, _ = cyclic_composite(False, MPI.COMM_SELF)
        c = reaction_table([i.record for i in serial], names)
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-10 * np.abs(c).max())
        for x, y in zip(serial, owner, strict=True):
            for key in ("external_work", "stored_energy", "dissipated_energy"):
                assert y.record[key] == pytest.approx(x.record[key], rel=1e-10, abs=1e-16), key


# -- 4. energy balance; viscoelastic relaxation ------------------------------------------------


def energy_gaps(steps: int):
    """|external − stored − dissipated| after each step, relative to the final dissipation."""
    problem = MacroProblem(
        unit_square(2),
        hf.Elasticity(2),
        {"left": (0.0, 0.0), "right": (0.02, 0.0)},
        quadrature_degree=1,
    )
    records = [
        i.record
        for i in march(
            problem,
            HistoryCellModel(composite_cell()),
            load_path(CYCLE, steps=steps),
            progress=False,
        )
    ]
    for r in records:  # at equilibrium the trapezoidal works agree (Newton tolerance)
        assert r["internal_work"] == pytest.approx(r["external_work"], rel=1e-8, abs=1e-14)
    gaps = [abs(r["external_work"] - r["stored_energy"] - r["dissipated_energy"]) for r in records]
    return np.array(gaps), records[-1]["dissipated_energy"]


def test_energy_balance_error_shrinks_with_the_step():
    """External work = stored + dissipated at every step, to the time-integration error.

    The external work is the trapezoidal rule of reaction × prescribed displacement; the
    stored energy is exact at the step ends and the dissipation the backward-Euler σ_y Δp.
    The rule is exact on the linear stretches of the response (elastic, or plastic with
    linear hardening under a fixed direction); the error comes from the steps where points
    cross the yield surface or their flow direction turns, O(Δt²) each. Over the path it
    is first order at worst; measured here (2 × 2 square, composite cell, load/unload/
    reverse): the largest gap over the steps / final dissipation = 0.098, 0.022, 0.0061 at
    2, 4, 8 steps per segment, observed orders 2.2 and 1.8 (the kinks are crossed a fixed
    number of times, each costing O(Δt²)).
    """
    worst = []
    for steps in (2, 4, 8):
        gaps, dissipated = energy_gaps(steps)
        assert dissipated > 0
        worst.append(gaps.max() / dissipated)
    rates = [math.log2(a / b) for a, b in itertools.pairwise(worst)]
    print("largest energy gap / dissipation", worst, "observed orders", rates)
    assert worst[-1] < 0.01
    assert min(rates) > 1.5  # above first order: see the docstring


def test_homogeneous_maxwell_cell_relaxes_as_the_prony_series():
    E, nu, prony = 1.0, 0.3, ((2.0, 0.5), (1.0, 3.0))
    law = Maxwell(E, nu, prony)
    rve = hf.build_rve(hf.RVESpec("laminate", 2, 0.5, 0.5))
    cell = history_cell_problem(hf.Elasticity(2), rve, dict.fromkeys(rve.phases, law))
    strain = 0.01
    problem = MacroProblem(
        unit_square(2),
        hf.Elasticity(2),
        {"left": (0.0, None), "bottom": (None, 0.0), "right": (strain, None)},
    )
    ramp, hold = 0.2, 4.0
    # the ramp in two steps, then a hold in steps of growing length
    times = (0.1, ramp, 0.3, 0.5, 1.0, 2.0, hold)
    path = LoadPath(((0.0, 0.0), (ramp, 1.0), (hold, 1.0)), times)
    increments = march(
        problem, HistoryCellModel(cell), path, rtol=1e-12, atol=1e-15, progress=False
    )
    for increment in increments:
        t, loaded = increment.time, min(increment.time, ramp)
        # hereditary integral of ε(s) = ε min(s, t_r)/t_r: the long-term spring carries
        # E ε(t); branch i, τ_i (E_i ε/t_r)(1 − e^{−min(t, t_r)/τ_i}) relaxed by
        # e^{−(t − t_r)/τ_i} after the ramp. The same ν in all branches: uniaxial stress in
        # plane strain (σ22 = 0, ε33 = 0) at all times, σ11 = E_r(t) ε / (1 − ν²), the
        # reaction of the unit-height right side.
        modulus = E * loaded / ramp + sum(
            Ei * (tau / ramp) * (1 - math.exp(-loaded / tau)) * math.exp(-(t - loaded) / tau)
            for Ei, tau in prony
        )
        expected = modulus * strain / (1 - nu**2)
        got = increment.record["reactions"]["right"][0]
        print(f"Maxwell t = {t}: relative error {abs(got / expected - 1):.1e}")
        # round-off of the uniform field and the 1e-12 Newton stop
        assert got == pytest.approx(expected, rel=1e-10), (t, got, expected)
    assert (
        increments[-1].record["reactions"]["right"][0]
        < 0.6 * increments[1].record["reactions"]["right"][0]  # relaxed from the ramp's end
    )
    last = increments[-1].record  # all of the dissipation is viscous
    assert last["dissipated_energy"] > 0
    assert last["viscous_dissipation"] == last["dissipated_energy"]
    assert last["plastic_dissipation"] == 0.0


# -- 5. a failed attempt leaves the committed states alone --------------------------------------


class FailingOnce(HistoryCellModel):
    """The real history model whose cell gets one micro Newton step in one attempt.

    The first attempt of the step ending at ``fail_time`` runs the real cell with
    ``max_iterations = 1``: its plastic points do not converge and raise MicroNewtonError.
    The committed rows are kept at that attempt's start and at the next one's.
    """

    def __init__(self, cell, fail_time):
        super().__init__(cell)
        self.fail_time, self.limit = fail_time, cell.max_iterations
        self.snapshots = []
        self.failures = 0

    def begin_step(self, time, dt):
        super().begin_step(time, dt)
        first = abs(time - self.fail_time) < 1e-12 and not self.snapshots
        if first or len(self.snapshots) == 1:
            self.snapshots.append(self.state_rows().copy())
        self.cell.max_iterations = 1 if first else self.limit

    def respond(self, gradients, points, ids=None):
        try:
            return super().respond(gradients, points, ids)
        except MicroNewtonError:
            self.failures += 1
            raise


def marched(model, path):
    problem = MacroProblem(
        unit_square(2),
        hf.Elasticity(2),
        {"left": (0.0, 0.0), "right": (0.02, 0.0)},
        quadrature_degree=1,
    )
    return problem, march(problem, model, path, rtol=1e-12, atol=1e-15, progress=False)


@pytest.mark.parametrize("failing", [0, 1])
def test_a_micro_failure_is_cut_back_and_equals_the_run_with_the_smaller_step(failing):
    """Step 2 (continued plastic loading, 0.5 → 1) or step 1, the first: before it the
    tangent predictor has no converged tangent yet, and a retry must ask the model again."""
    path = load_path(CYCLE, steps=2)
    model = FailingOnce(composite_cell(), path.times[failing])
    problem, cut = marched(model, path)
    assert MPI.COMM_WORLD.allreduce(model.failures, op=MPI.SUM) >= 1  # the real cell failed
    rest = len(path.times) - failing - 1
    assert [i.cutbacks for i in cut] == [0] * failing + [1, 1] + [0] * rest
    before, after = model.snapshots
    if failing == 0:  # no state before the first respond; virgin committed rows after it
        assert before.size == 0 and after.size > 0 and not after.any()
    else:
        np.testing.assert_array_equal(after, before)  # rollback: the committed rows untouched
    start = path.times[failing - 1] if failing else 0.0
    middle = 0.5 * (start + path.times[failing])
    times = (*path.times[:failing], middle, *path.times[failing:])
    reference_problem, reference = marched(
        HistoryCellModel(composite_cell()), LoadPath(path.points, times)
    )
    assert [i.time for i in cut] == pytest.approx([i.time for i in reference], abs=1e-14)
    a = reaction_table([i.record for i in reference], ["left", "right"])
    b = reaction_table([i.record for i in cut], ["left", "right"])
    # the same arithmetic (the same committed states, the same step): round-off only
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-12 * np.abs(a).max())
    for x, y in zip(reference, cut, strict=True):
        for key in ("external_work", "stored_energy", "dissipated_energy"):
            assert y.record[key] == pytest.approx(x.record[key], rel=1e-12, abs=1e-18), key
    np.testing.assert_allclose(
        owned_u(problem), owned_u(reference_problem), rtol=0, atol=1e-12 * 0.02
    )


VISCOUS_RUN = """
[macro]
geometry = "plate-with-hole"
mesh_size = 0.4
quadrature_degree = 1
[dirichlet]
left = [0.0, "free"]
bottom = ["free", 0.0]
right = [0.01, "free"]
[loading]
path = [[0, 0], [0.1, 1], [5, 1]]
steps = [1, 2]
[rve]
kind = "inclusion"
dim = 2
fraction = 0.3
mesh_size = 0.25
[physics]
kind = "elasticity"
[materials.matrix]
law = "maxwell"
E = 1.0
nu = 0.35
prony = [[2.0, 0.5], [1.0, 3.0]]
[materials.inclusion]
E = 70.0
nu = 0.2
[output]
fields = "none"
snapshots = []
"""


def test_a_viscous_run_pictures_its_dissipation_not_a_plastic_zone(tmp_path):
    import tomllib

    from hmm_fenics.run.job import run
    from hmm_fenics.run.schema import parse_run_config

    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    config = parse_run_config(tomllib.loads(VISCOUS_RUN), folder)
    results = run(config, folder / "out", progress=False)
    last = results["steps"][-1]
    assert last["viscous_dissipation"] == last["dissipated_energy"] > 0
    assert (folder / "out" / "dissipation.png").stat().st_size > 10_000
    assert not (folder / "out" / "plastic_zone.png").exists()
