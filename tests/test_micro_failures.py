"""Failed micro solves are never silent (issue 10.2): factorization status and finite results."""

import re

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import CellModel
from hmm_fenics.errors import MicroFailure
from hmm_fenics.micro.cell_problem import CellProblem


@pytest.fixture(scope="module")
def rve():
    return hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))


def floating_inclusion(rve):
    """Laws of a singular cell: a zero-conductivity matrix leaves the inclusion floating.

    (``Conductivity`` refuses k = 0, so the laws are given to the cell directly.)
    """
    return {rve.phases["matrix"]: lambda g: 0.0 * g, rve.phases["inclusion"]: lambda g: 10.0 * g}


@pytest.mark.parametrize(
    ("options", "detail"),
    [
        ({}, r"MUMPS INFOG\(1\) = -10"),  # the default: MUMPS Cholesky reports, PETSc does not
        ({"pc_type": "lu"}, r"MUMPS INFOG\(1\) = -10"),
        ({"pc_type": "lu", "pc_factor_mat_solver_type": "petsc"}, "missing diagonal entries"),
    ],
)
def test_singular_cell_is_one_clear_error_naming_the_cell(rve, options, detail):
    with pytest.raises(MicroFailure, match=r"2D inclusion cell \(fraction 0.3\)") as info:
        CellProblem(hf.Diffusion(2), rve, floating_inclusion(rve), 1, options)
    message = str(info.value)
    assert re.search(detail, message), message
    assert "positive modulus (conductivity)" in message and "percolates" in message


def test_iterative_solver_that_does_not_converge_is_reported(rve):
    with pytest.raises(MicroFailure, match=r"did not converge on the 2D inclusion cell"):
        CellProblem(
            hf.Diffusion(2),
            rve,
            {t: (lambda g: 1.0 * g) for t in rve.phases.values()},
            1,
            {"ksp_type": "cg", "pc_type": "none", "ksp_max_it": 2, "ksp_rtol": 1e-12},
        )


def test_non_finite_gradient_names_the_point(rve):
    cell = hf.cell_problem(
        hf.Diffusion(2), rve, {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)}
    )
    G = np.array([[1.0, 0.0], [np.nan, 0.0], [0.0, 1.0]])
    x = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    with pytest.raises(
        MicroFailure,
        match=r"non-finite micro response at macro point 17 \(global index\) at x = \(0.3, 0.4\)",
    ) as info:
        CellModel(cell).respond(G, x, np.array([16, 17, 18]))
    assert info.value.point == 1


def test_incomplete_factorization_as_a_direct_solver_is_refused(rve):
    """preonly + ILU is no direct solve: its tensor was 60 % wrong, silently."""
    materials = {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)}
    with pytest.raises(MicroFailure, match=r"relative residual .* incomplete factorization"):
        hf.cell_problem(
            hf.Diffusion(2), rve, materials, 1, {"ksp_type": "preonly", "pc_type": "ilu"}
        )


def test_every_unit_column_of_an_iterative_solve_is_checked():
    """KSPMatSolve reports the last column only; a column stopped early must still fail."""
    materials = {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)}
    # e2 runs along the layers: its load is round-off, below atol (converged at once)
    rve = hf.build_rve(hf.RVESpec("laminate", 2, 0.3, 0.05))
    options = {"ksp_type": "cg", "pc_type": "jacobi", "ksp_max_it": 3, "ksp_atol": 1e-8}
    with pytest.raises(MicroFailure, match="did not converge"):
        hf.cell_problem(hf.Diffusion(2), rve, materials, 1, options)


def test_misspelled_factor_package_is_an_input_error(rve):
    from hmm_fenics.errors import InputError

    materials = {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)}
    with pytest.raises(InputError, match="unknown PETSc type"):
        hf.cell_problem(
            hf.Diffusion(2),
            rve,
            materials,
            1,
            {"pc_type": "lu", "pc_factor_mat_solver_type": "mumsp"},
        )


def test_nonlinear_cell_names_a_non_finite_gradient_point(rve):
    from hmm_fenics.materials import PowerLawConductivity
    from hmm_fenics.micro.nonlinear import NonlinearCellModel, nonlinear_cell_problem

    cell = nonlinear_cell_problem(
        hf.Diffusion(2),
        rve,
        {"matrix": PowerLawConductivity(1.0, 1.5, 1.0), "inclusion": hf.Conductivity(10.0)},
    )
    G = np.array([[1.0, 0.0], [np.nan, 0.0]])
    x = np.array([[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(
        MicroFailure,
        match=r"non-finite macro gradient .* at macro point 8 \(global index\) at x = \(0.3, 0.4\)",
    ):
        NonlinearCellModel(cell).respond(G, x, np.array([7, 8]))


def test_a_rank_that_computes_no_point_answers_an_empty_batch():
    """A balanced plan can leave a rank without points (4 ranks, a few dear points): the
    history model must answer the empty batch. ``check_finite`` reshaped (0, c, c) with -1,
    which NumPy refuses for size 0 (test_history_fe2's cyclic test failed now and then)."""
    from hmm_fenics.micro.cell_problem import MicroResponse, check_finite
    from hmm_fenics.micro.history import history_cell_problem
    from hmm_fenics.micro.history_model import HistoryCellModel
    from hmm_fenics.point_laws import Elastic, J2Plasticity

    empty = MicroResponse(np.zeros((0, 3)), np.zeros((0, 3, 3)))
    assert check_finite(empty, np.zeros((0, 3)), np.zeros((0, 2))) is empty
    laws = {"matrix": J2Plasticity(70.0, 0.33, 0.25, 1.0, 1.0), "inclusion": Elastic(400.0, 0.2)}
    cell = history_cell_problem(
        hf.Elasticity(2), hf.build_rve(hf.RVESpec("inclusion", 2, 0.2, 0.3)), laws
    )
    model = HistoryCellModel(cell)
    model.begin_step(1.0, 1.0)
    response = model.respond(np.zeros((0, 3)), np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
    assert response.flux.shape == (0, 3) and response.tangent.shape == (0, 3, 3)
    model.commit()
    assert model.state_rows().shape == (0, model.state_width())
