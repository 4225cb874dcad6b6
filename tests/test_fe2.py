"""FE² coupling: macro problems driven by quadrature-point micro responses.

The macro mesh lives on COMM_WORLD (distributed under mpirun), the cells on COMM_SELF.
"""

import numpy as np
import pytest
from conftest import EPOXY, glass_epoxy, strip_mesh

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import CellModel, EffectiveModel, GradedModel
from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.solver import solve

PULL = {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.01, None)}


def gathered(u):
    """All owned dof values of a function, in global order (for comparisons across runs)."""
    from mpi4py import MPI

    imap = u.function_space.dofmap.index_map
    bs = u.function_space.dofmap.index_map_bs
    local = u.x.array[: imap.size_local * bs]
    return np.concatenate(MPI.COMM_WORLD.allgather(local))


@pytest.fixture(scope="module")
def fibre_cell():
    return hf.cell_problem(
        hf.Elasticity(2), hf.build_rve(hf.RVESpec("inclusion", 2, 0.4, 0.05)), glass_epoxy()
    )


def test_per_point_micro_solves_equal_the_fast_path(fibre_cell):
    mesh = macro_mesh("plate-with-hole", 0.08, params={"L": 1.0, "R": 0.25})
    fast = MacroProblem(mesh, hf.Elasticity(2), PULL)
    per_point = MacroProblem(mesh, hf.Elasticity(2), PULL)
    solve(fast, EffectiveModel(fibre_cell.effective_tensor))
    result = solve(per_point, CellModel(fibre_cell))
    assert result.iterations == 1  # linear: one Newton step
    a, b = gathered(fast.u), gathered(per_point.u)
    np.testing.assert_allclose(b, a, atol=1e-12 * np.abs(a).max())
    np.testing.assert_allclose(
        per_point.quadrature.flux.x.array, fast.quadrature.flux.x.array, atol=1e-11
    )


def test_homogeneous_cell_reproduces_uniaxial_plane_strain():
    """Both phases epoxy: the FE² solution is the affine uniaxial-stress field, exactly."""
    physics = hf.Elasticity(2)
    cell = hf.cell_problem(
        physics,
        hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1)),
        {"matrix": EPOXY, "inclusion": EPOXY},
    )
    problem = MacroProblem(macro_mesh("rectangle", 0.2, params={"L": 2.0, "H": 1.0}), physics, PULL)
    solve(problem, CellModel(cell))
    x = problem.V.tabulate_dof_coordinates()
    n = problem.V.dofmap.index_map.size_local
    u = problem.u.x.array.reshape(-1, 2)[:n]
    strain = 0.01 / 2.0
    nu = EPOXY.nu
    np.testing.assert_allclose(u[:, 0], strain * x[:n, 0], atol=1e-12)
    np.testing.assert_allclose(u[:, 1], -nu / (1 - nu) * strain * x[:n, 1], atol=1e-12)


def test_diffusion_with_a_laminate_template_is_linear_across_layers():
    physics = hf.Diffusion(2)
    cell = hf.cell_problem(
        physics,
        hf.build_rve(hf.RVESpec("laminate", 2, 0.5, 0.1)),
        {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)},
    )
    problem = MacroProblem(macro_mesh("rectangle", 0.2), physics, {"left": 0.0, "right": 1.0})
    solve(problem, CellModel(cell))
    n = problem.V.dofmap.index_map.size_local
    x = problem.V.tabulate_dof_coordinates()[:n]
    np.testing.assert_allclose(problem.u.x.array[:n], x[:, 0], atol=1e-12)
    # the flux is the harmonic mean across the layers, at every quadrature point
    flux = problem.quadrature.flux.x.array.reshape(-1, 2)
    np.testing.assert_allclose(flux[:, 0], 1 / (0.5 / 10 + 0.5), rtol=1e-10)


def test_graded_microstructure_uses_one_template_per_spec():
    physics = hf.Elasticity(2)
    materials = glass_epoxy()

    def rve_at(x):  # fibre fraction 0.2 on the left half, 0.5 on the right half
        return hf.RVESpec("inclusion", 2, 0.2 if x[0] < 0.5 else 0.5, 0.05)

    graded = GradedModel(rve_at, physics, materials)
    mesh = macro_mesh("rectangle", 0.125)
    problem = MacroProblem(mesh, physics, PULL)
    solve(problem, graded)
    assert len(graded.cells) == 2
    # the same model with one spec everywhere equals the single-template per-point solve
    uniform = GradedModel(lambda x: hf.RVESpec("inclusion", 2, 0.5, 0.05), physics, materials)
    a, b = MacroProblem(mesh, physics, PULL), MacroProblem(mesh, physics, PULL)
    solve(a, uniform)
    solve(b, CellModel(uniform.cell(hf.RVESpec("inclusion", 2, 0.5, 0.05))))
    np.testing.assert_allclose(gathered(a.u), gathered(b.u), atol=1e-14)
    # graded lies between the two uniform parts: its end displacement in y is intermediate
    assert not np.allclose(gathered(problem.u), gathered(a.u))


def test_unknown_boundary_names_are_an_input_error():
    mesh = macro_mesh("rectangle", 0.25)
    with pytest.raises(
        InputError, match=r"boundary name\(s\) \['east'\] are not in the macro mesh"
    ):
        MacroProblem(mesh, hf.Elasticity(2), {"east": (0.0, 0.0)})


def test_user_macro_mesh_with_named_boundaries(tmp_path):
    from mpi4py import MPI

    own = tmp_path / f"strip_{MPI.COMM_WORLD.rank}.msh"  # each rank writes; rank 0's is read
    strip_mesh(own)
    mesh = macro_mesh("file", 0.1, path=str(own))
    assert set(mesh.boundaries) == {"inlet", "outlet"}
    physics = hf.Diffusion(2)
    problem = MacroProblem(mesh, physics, {"inlet": 1.0, "outlet": 0.0})
    solve(problem, EffectiveModel(np.diag([2.0, 1.0])))
    n = problem.V.dofmap.index_map.size_local
    x = problem.V.tabulate_dof_coordinates()[:n]
    np.testing.assert_allclose(problem.u.x.array[:n], 1 - x[:, 0] / 2.0, atol=1e-12)


def test_second_order_macro_mesh_is_refused(tmp_path):
    import gmsh

    from hmm_fenics.rve.geometry import gmsh_session

    path = tmp_path / f"p2_{__import__('mpi4py').MPI.COMM_WORLD.rank}.msh"
    with gmsh_session():
        gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
        gmsh.model.occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [1], 1, name="domain")
        gmsh.model.addPhysicalGroup(1, [1, 2, 3, 4], 1, name="boundary")
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.3)
        gmsh.model.mesh.generate(2)
        gmsh.model.mesh.setOrder(2)
        gmsh.write(str(path))
    with pytest.raises(InputError, match=r"cells of type\(s\) \['Triangle 6'\]; supported are"):
        macro_mesh("file", 0.1, path=str(path))


def test_macro_newton_that_does_not_converge_says_so():
    from hmm_fenics.materials import PowerLawElastic
    from hmm_fenics.micro.nonlinear import NonlinearCellModel, nonlinear_cell_problem

    physics = hf.Elasticity(2)
    cell = nonlinear_cell_problem(
        physics,
        hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1)),
        {
            "matrix": PowerLawElastic(3.0, 0.35, 0.002, 0.3),
            "inclusion": hf.IsotropicElastic(70.0, 0.2),
        },
    )
    problem = MacroProblem(macro_mesh("rectangle", 0.5), physics, PULL)
    with pytest.raises(
        RuntimeError, match=r"macro Newton did not converge in 2 iterations: \|R\| = "
    ):
        solve(problem, NonlinearCellModel(cell), max_iterations=2)


def test_neumann_traction_gives_the_uniaxial_solution():
    """Both phases epoxy, traction t on the right edge: u1 = t x1 / E', u2 = −ν' t x2 / E'."""
    physics = hf.Elasticity(2)
    cell = hf.cell_problem(
        physics,
        hf.build_rve(hf.RVESpec("laminate", 2, 0.3, 0.1)),
        {"matrix": EPOXY, "inclusion": EPOXY},
    )
    t = 0.05
    problem = MacroProblem(
        macro_mesh("rectangle", 0.25),
        physics,
        {"left": (0.0, None), "bottom": (None, 0.0)},
        neumann={"right": (t, 0.0)},
        quadrature_degree=3,
    )
    solve(problem, CellModel(cell))
    E, nu = EPOXY.E, EPOXY.nu
    E_ps, nu_ps = E / (1 - nu**2), nu / (1 - nu)  # plane strain
    n = problem.V.dofmap.index_map.size_local
    x = problem.V.tabulate_dof_coordinates()[:n]
    u = problem.u.x.array.reshape(-1, 2)[:n]
    np.testing.assert_allclose(u[:, 0], t * x[:, 0] / E_ps, atol=1e-12)
    np.testing.assert_allclose(u[:, 1], -nu_ps * t * x[:, 1] / E_ps, atol=1e-12)


@pytest.mark.parametrize("geometry", ["l-shape", "box"])
def test_other_geometries_fast_path_equals_per_point(geometry):
    dim = 3 if geometry == "box" else 2
    physics = hf.Elasticity(dim)
    cell = hf.cell_problem(
        physics,
        hf.build_rve(hf.RVESpec("inclusion", dim, 0.2, 0.1 if dim == 2 else 0.25)),
        glass_epoxy(),
    )
    mesh = macro_mesh(geometry, 0.2 if dim == 2 else 0.34)
    bcs = {"left": (0.0,) * dim, "right": (0.01,) + (0.0,) * (dim - 1)}
    a, b = MacroProblem(mesh, physics, bcs), MacroProblem(mesh, physics, bcs)
    solve(a, EffectiveModel(cell.effective_tensor))
    solve(b, CellModel(cell))
    np.testing.assert_allclose(
        gathered(b.u), gathered(a.u), atol=1e-12 * np.abs(gathered(a.u)).max()
    )
