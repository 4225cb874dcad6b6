"""The error budget (studies.budget): macro (H), modeling (δ/H) and resonance (ε/δ, BC) separated."""

import math

from mpi4py import MPI

import pytest

import hmm_fenics  # noqa: F401  (loads the wheel's MPI before dolfinx)
from hmm_fenics.errors import InputError
from hmm_fenics.studies import budget

pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def rows():
    # a coarse base (H = 1/2: 8 triangles, 24 macro points) keeps every row ~1 s
    study = budget.budget_study(
        {
            "H": [0.5, 0.25],
            "delta_over_H": [0.1, 0.4],
            "eps_over_H": [0.1, 0.025],
            "bc": ["periodic", "dirichlet"],
        },
        base={"H": 0.5},
        comm=MPI.COMM_SELF,
    )
    return {(r.sweep, budget.sweep_value(r)): r for r in study.rows}


def test_the_macro_error_falls_as_h_cubed(rows):
    # P2 macro, smooth u0: ‖u_H − u0‖_L2 = O(H³), a factor 8 per halving (measured 7.6)
    coarse, fine = rows["H", 0.5], rows["H", 0.25]
    assert 5 < coarse.macro_L2 / fine.macro_L2 < 10
    # and it does not depend on the windows: the same H gives the same macro error
    assert rows["bc", "dirichlet"].macro_L2 == pytest.approx(coarse.macro_L2, rel=1e-12)


def test_delta_and_epsilon_are_varied_one_at_a_time(rows):
    # base H = 1/2, δ/H = 1/5, ε/δ = 1/2: ε = 0.05 and δ = 0.1 stay fixed in the other's sweep
    for value in (0.1, 0.4):
        row = rows["delta_over_H", value]
        assert row.epsilon == pytest.approx(0.05) and row.delta == pytest.approx(value * 0.5)
    for row in (r for (sweep, _), r in rows.items() if sweep == "eps_over_H"):
        assert row.delta == pytest.approx(0.1)


def test_the_micro_scale_term_is_first_order_in_epsilon(rows):
    # at fixed δ, c(x) = 1 + x1 x2 against the oscillation: e_A = O(ε|∇c|/c), so a factor 4
    # for ε/4 (measured 3.98; the window mesh error, ~1e-4 at 8 cells per period, and the
    # δ-term below bound it from below)
    coarse = next(r for (sweep, v), r in rows.items() if sweep == "eps_over_H" and v > 0.05)
    fine = next(r for (sweep, v), r in rows.items() if sweep == "eps_over_H" and v < 0.05)
    assert 3 < coarse.coefficient / fine.coefficient < 5
    assert coarse.micro_L2 > 2 * fine.micro_L2


def test_the_modeling_term_in_delta_is_second_order_and_small_here(rows):
    # at fixed ε the window's size enters through c over the window only: O((δ|∇c|/c)²), below
    # the micro-scale term at these δ (measured ×1.10 for δ ×4, where a sweep at fixed ε/δ
    # gave ×4.3: it moved ε along)
    small, large = rows["delta_over_H", 0.1], rows["delta_over_H", 0.4]
    assert 1.0 <= large.coefficient / small.coefficient < 1.5


def test_the_boundary_condition_dominates_the_micro_error(rows):
    # periodic windows of whole periods: the modeling error only (~3e-3); Dirichlet windows
    # add the boundary layer, O(ε/δ) = O(1/2) × a small constant (~3e-2)
    periodic, dirichlet = rows["bc", "periodic"], rows["bc", "dirichlet"]
    assert dirichlet.coefficient > 5 * periodic.coefficient
    assert dirichlet.micro_L2 > 5 * periodic.micro_L2


def test_the_micro_column_is_bounded_by_the_coefficient_error(rows):
    # Strang: ∫A_δ∇w·∇v = ∫(A − A_δ)∇u_H·∇v for w = u_HMM − u_H on the macro rule (3 points
    # of degree 2: exact for |∇w|² of P2), so |w|_H1 ≤ max‖A − A_δ‖/min λ(A_δ) |u_H|_H1 with
    # ‖A − A_δ‖₂ ≤ e_A·2c, λ(A_δ) ≥ (√3 − 2e_A)c and c = 1 + x1 x2 ∈ [1, 2] (the factor 2),
    # and |u_H| ≤ (1 + macro_H1)|u0|. A micro column from other solutions or norms breaks it.
    for row in rows.values():
        e = row.coefficient
        bound = 2 * 2 * e / (math.sqrt(3) - 2 * e) * (1 + row.macro_H1)
        assert 0 < row.micro_H1 <= bound, (row.sweep, row.micro_H1, bound)


def test_the_macro_solution_with_the_exact_coefficient_is_the_plain_fe_solution():
    # independent code: DOLFINx's LinearProblem with A(x) = c(x) diag(√3, 2) in UFL, the
    # stiffness on the same 3-point rule as the macro quadrature points, the source on
    # degree 6 (as the study): the library's FE² loop with ExactModel must give its error
    import ufl
    from dolfinx import fem
    from dolfinx.fem.petsc import LinearProblem

    mesh = budget.unit_square(0.25, MPI.COMM_SELF)
    x = ufl.SpatialCoordinate(mesh.mesh)
    u0 = ufl.sin(ufl.pi * x[0]) * ufl.sin(ufl.pi * x[1])
    A = budget.scale(x) * ufl.as_matrix([[math.sqrt(3), 0], [0, 2]])
    V = fem.functionspace(mesh.mesh, ("Lagrange", 2))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    dq = ufl.Measure("dx", metadata={"quadrature_degree": 2})
    dx6 = ufl.Measure("dx", metadata={"quadrature_degree": 6})
    facets = mesh.facet_tags.find(1)
    bc = fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 1, facets), V)
    problem = LinearProblem(
        ufl.inner(A * ufl.grad(u), ufl.grad(v)) * dq,
        -ufl.div(A * ufl.grad(u0)) * v * dx6,
        bcs=[bc],
        petsc_options_prefix="test_budget_",
        petsc_options={"ksp_type": "preonly", "pc_type": "lu"},
    )
    uh = problem.solve()
    error = math.sqrt(fem.assemble_scalar(fem.form((uh - u0) ** 2 * dx6)))
    norm = math.sqrt(fem.assemble_scalar(fem.form(u0**2 * dx6)))
    row = budget.solve_row("H", 0.25, 0.2, 0.5, "periodic", comm=MPI.COMM_SELF)
    assert row.macro_L2 == pytest.approx(error / norm, rel=1e-9)  # one solve each: round-off


def test_bad_values_name_the_option():
    with pytest.raises(InputError, match="--H"):
        budget.solve_row("H", 0.0, 0.2, 0.5, "periodic")
    with pytest.raises(InputError, match="--eps-over-delta"):
        budget.solve_row("H", 0.5, 0.2, 2.0, "periodic")
    with pytest.raises(InputError, match="--bc"):
        budget.budget_study({"bc": ["robin"]})
    with pytest.raises(InputError, match="sweep"):
        budget.budget_study({"nu": [1.0]})


def test_an_h_the_mesh_cannot_have_is_refused():
    # the structured square has n = round(1/H) cells per side: H = 0.3 would mesh 1/3 while
    # the row reported 0.3, so it is refused naming --H; 1/n values pass
    with pytest.raises(InputError, match="--H"):
        budget.check_row(0.3, 0.2, 0.5, "periodic")
    with pytest.raises(InputError, match="--H"):
        budget.unit_square(0.3, MPI.COMM_SELF)
    budget.check_row(1 / 3, 0.2, 0.5, "periodic")
    assert budget.unit_square(1 / 3, MPI.COMM_SELF).mesh.topology.index_map(2).size_local == 18


def test_a_huge_window_names_the_budget_options():
    # ε/δ = 1e-300 asks for 8e300 cells per side: the study's options, three digits
    with pytest.raises(InputError) as error:
        budget.check_row(0.5, 0.2, 1e-300, "periodic")
    assert "raise --eps-over-delta" in str(error.value) and "8e+300" in str(error.value)
    assert "micro." not in str(error.value)


def test_one_window_per_macro_point():
    # linear micro physics: SampledModel solves each window once, and the Newton loop's
    # second evaluation (the convergence check) reuses it
    row = budget.solve_row("H", 0.5, 0.2, 0.5, "periodic", comm=MPI.COMM_SELF)
    assert row.windows == row.points == 8 * 3  # 8 triangles, 3 points each
