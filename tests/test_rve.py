"""Periodic RVE meshes: node matching on every kind, fractions, user meshes, the map P."""

from mpi4py import MPI
from petsc4py import PETSc

import gmsh
import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.errors import InputError, PeriodicityError
from hmm_fenics.rve.geometry import FRACTION_TOLERANCE
from hmm_fenics.rve.mesh import write_msh
from hmm_fenics.rve.periodic import periodic_images, periodic_map

KINDS = [
    ("inclusion", 2, 0.4, 0.05),
    ("inclusion", 3, 0.2, 0.15),
    ("laminate", 2, 0.3, 0.05),
    ("laminate", 3, 0.3, 0.2),
]


@pytest.mark.parametrize(("kind", "dim", "fraction", "h"), KINDS)
def test_generated_cells_are_periodic_with_both_phases(kind, dim, fraction, h):
    rve = hf.build_rve(hf.RVESpec(kind, dim, fraction, h))
    assert set(rve.phases) == {"matrix", "inclusion"}
    np.testing.assert_allclose(rve.lower, 0.0, atol=1e-14)
    np.testing.assert_allclose(rve.upper, 1.0, atol=1e-14)
    x = rve.mesh.geometry.x
    image = periodic_images(x, rve.lower, rve.upper)  # raises if any face fails to match
    moved = image != np.arange(len(x))
    # every moved node lands on the origin side of each coordinate it had on a max face
    wrapped = np.where(np.abs(x[:, :dim] - 1.0) < 1e-12, 0.0, x[:, :dim])
    np.testing.assert_allclose(x[image[moved], :dim], wrapped[moved], atol=1e-12)
    # a straight-sided laminate is exact; a curved inclusion is enlarged to hit the target
    tol = 1e-12 if kind == "laminate" else FRACTION_TOLERANCE
    assert abs(rve.fraction - fraction) / fraction < tol


@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("shape", [(), (2,)])
def test_prolongation_copies_independent_values_to_images(degree, shape):
    from dolfinx import fem

    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))
    V = fem.functionspace(rve.mesh, ("Lagrange", degree, shape))
    pmap = periodic_map(V, rve.lower, rve.upper)
    # a smooth periodic function, sampled at the independent dofs, must be reproduced everywhere
    bs = V.dofmap.index_map_bs
    x = V.tabulate_dof_coordinates()
    f = np.sin(2 * np.pi * x[:, 0]) * np.cos(2 * np.pi * x[:, 1]) + 0.0  # zero at the origin corner
    full = np.repeat(f, bs) * np.tile(np.arange(1, bs + 1), len(f))
    P = pmap.P
    rows, cols = P.getSize()
    assert (rows, cols) == (pmap.n_full, pmap.n_independent)
    indptr, indices, _ = P.getValuesCSR()
    assert np.all(np.diff(indptr) <= 1)
    source = np.zeros(cols)
    has = np.diff(indptr) == 1
    source[indices] = full[has]  # each column's value taken from a row that refers to it
    result = P.createVecLeft()
    P.mult(PETSc.Vec().createWithArray(source, comm=MPI.COMM_SELF), result)
    np.testing.assert_allclose(result.array, full, atol=1e-12)
    # pinned origin corner: exactly bs rows are empty per image of the corner (4 corners in 2D)
    assert np.count_nonzero(~has) == 4 * bs


def test_periodic_images_names_the_face_that_does_not_match():
    grid = np.array([[x, y, 0.0] for x in (0, 0.5, 1) for y in (0, 0.5, 1)])
    periodic_images(grid, np.zeros(2), np.ones(2))  # a matching grid passes
    grid[7, 1] = 0.55  # move node (1.0, 0.5) to (1.0, 0.55)
    with pytest.raises(
        PeriodicityError, match=r"face x1 = 1 have no partner on face x1 = 0.*\(1, 0.55\)"
    ):
        periodic_images(grid, np.zeros(2), np.ones(2))


def _unit_square_msh(path, left_nodes, right_nodes, names=("matrix", "inclusion")):
    """A unit square mesh with a vertical strip, its left and right edges split differently."""
    with hf.rve.geometry.gmsh_session():
        occ = gmsh.model.occ
        cell = occ.addRectangle(0, 0, 0, 1, 1)
        strip = occ.addRectangle(0.4, 0, 0, 0.2, 1)
        _, pieces = occ.fragment([(2, cell)], [(2, strip)])
        occ.synchronize()
        inc = [t for _, t in pieces[1]]
        mat = [t for _, t in pieces[0] if t not in inc]
        for d, tag in gmsh.model.getEntities(1):
            xmin, _, _, xmax, _, _ = gmsh.model.getBoundingBox(d, tag)
            if xmax < 1e-6:
                gmsh.model.mesh.setTransfiniteCurve(tag, left_nodes)
            elif xmin > 1 - 1e-6:
                gmsh.model.mesh.setTransfiniteCurve(tag, right_nodes)
        gmsh.model.addPhysicalGroup(2, mat, 1, name=names[0])
        gmsh.model.addPhysicalGroup(2, inc, 2, name=names[1])
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.2)
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))
    return path


def test_user_mesh_that_is_not_periodic_is_refused_naming_the_face(tmp_path):
    path = _unit_square_msh(tmp_path / "bad.msh", left_nodes=6, right_nodes=9)
    with pytest.raises(PeriodicityError, match=r"face x1 = 1 have no partner on face x1 = 0"):
        hf.build_rve(hf.RVESpec("file", 2, path=str(path)))


def test_user_mesh_without_the_phase_groups_is_refused(tmp_path):
    path = _unit_square_msh(tmp_path / "groups.msh", 6, 6, names=("matrix", "fibre"))
    with pytest.raises(InputError, match=r"lacks the 2D physical group\(s\) \['inclusion'\]"):
        hf.build_rve(hf.RVESpec("file", 2, path=str(path)))


def test_missing_user_mesh_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        hf.build_rve(hf.RVESpec("file", 2, path=str(tmp_path / "nowhere.msh")))


@pytest.mark.parametrize("dim", [2, 3])
def test_user_mesh_round_trip_gives_the_same_tensor(tmp_path, dim):
    spec = hf.RVESpec("inclusion", dim, 0.2, 0.1 if dim == 2 else 0.25)
    path = write_msh(spec, tmp_path / "cell.msh")
    physics = hf.Diffusion(dim)
    materials = {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)}
    generated = hf.homogenize(spec, physics, materials, check=False)
    read = hf.homogenize(hf.RVESpec("file", dim, path=str(path)), physics, materials, check=False)
    # gmsh is deterministic: the same mesh, hence the same tensor up to round-off
    np.testing.assert_allclose(read.tensor, generated.tensor, rtol=1e-12, atol=1e-14)
