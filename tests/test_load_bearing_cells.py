"""Cells that cannot carry load are refused with the reason; porous cells that can still pass.

Solid pieces are joined only through shared facets (edges in 2D, faces in 3D), also across
periodic faces: pieces touching at a node (a checkerboard whose inclusion is void) carry no
load. A user mesh must fill its box unless its pores are declared (a void inclusion).
"""

import math
import textwrap

from mpi4py import MPI

import gmsh
import numpy as np
import pytest
from conftest import cli_error

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.errors import InputError
from hmm_fenics.rve.geometry import FRACTION_TOLERANCE, gmsh_session, set_periodic

RADIUS = 0.3


def _msh(path, build, h=0.1):
    """Mesh the 2D regions ``build()`` returns as the ``matrix`` (and ``inclusion``) groups."""
    with gmsh_session():
        groups = build(gmsh.model.occ)
        gmsh.model.occ.synchronize()
        for tag, (name, surfaces) in enumerate(groups.items(), start=1):
            gmsh.model.addPhysicalGroup(2, surfaces, tag, name=name)
        set_periodic(2, (1.0, 1.0))
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))
    return path


def shifted_void_checkerboard(occ):
    """The void checkerboard seen from a square's centre: its faces cut through solid squares
    (so the cell is periodic), and the centre square touches the corner one at four nodes."""
    squares = [(0.25, 0.25, 0.5, 0.5)]  # centre square; the corner square in four quarters
    squares += [(x, y, 0.25, 0.25) for x in (0.0, 0.75) for y in (0.0, 0.75)]
    tags = [(2, occ.addRectangle(x, y, 0, w, h)) for x, y, w, h in squares]
    pieces, _ = occ.fragment(tags[:1], tags[1:])  # one node where squares touch
    return {"matrix": [t for _, t in pieces]}


def square_with_hole(occ):
    box, hole = occ.addRectangle(0, 0, 0, 1, 1), occ.addDisk(0.5, 0.5, 0, RADIUS, RADIUS)
    return {"matrix": [occ.cut([(2, box)], [(2, hole)])[0][0][1]]}


def square_and_overlapping_disk(occ):
    """A matrix over the whole box and a disk on top of it, not cut out of it."""
    box, disk = occ.addRectangle(0, 0, 0, 1, 1), occ.addDisk(0.5, 0.5, 0, RADIUS, RADIUS)
    return {"matrix": [box], "inclusion": [disk]}


def test_facet_connectivity_of_simplices():
    """Two triangles (tetrahedra) are one piece through an edge (a face), two through less."""
    from hmm_fenics.rve.checks import _facet_connected_pieces

    edges = [[1, 2], [0, 2], [0, 1]]  # a triangle's facets (local vertices)
    faces = [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]  # a tetrahedron's
    assert _facet_connected_pieces(np.array([[0, 1, 2], [1, 2, 3]]), edges) == 1  # shared edge
    assert _facet_connected_pieces(np.array([[0, 1, 2], [2, 3, 4]]), edges) == 2  # one node
    assert _facet_connected_pieces(np.array([[0, 1, 2, 3], [1, 2, 3, 4]]), faces) == 1  # face
    assert _facet_connected_pieces(np.array([[0, 1, 2, 3], [2, 3, 4, 5]]), faces) == 2  # edge
    # a chain numbered against its order still joins into one piece
    chain = np.array([[k, k + 1, k + 2] for k in range(40)])[
        np.random.default_rng(0).permutation(40)
    ]
    assert _facet_connected_pieces(chain, edges) == 1


def test_void_checkerboard_touching_at_nodes_is_refused(tmp_path):
    path = _msh(tmp_path / f"checker_{MPI.COMM_WORLD.rank}.msh", shifted_void_checkerboard)
    spec = hf.RVESpec("file", 2, path=str(path), void=True)
    with pytest.raises(
        InputError,
        match=r"falls into 2 disconnected pieces that share no edge .*touch only at a node",
    ):
        hf.build_rve(spec)


def test_generated_void_checkerboard_is_refused_before_meshing():
    with pytest.raises(InputError, match="touch only at their corners: they carry no load"):
        hf.RVESpec("checkerboard", 2, 0.5, void=True)


@pytest.mark.parametrize(("dim", "h"), [(2, 0.1), (3, 0.25)])
def test_matrix_with_holes_still_passes(dim, h):
    rve = hf.build_rve(hf.RVESpec("inclusion", dim, 0.2, h, void=True))
    assert set(rve.phases) == {"matrix"} and abs(rve.fraction / 0.2 - 1) < FRACTION_TOLERANCE


def test_user_mesh_that_does_not_fill_its_box_is_refused_unless_void(tmp_path):
    path = _msh(tmp_path / f"holed_{MPI.COMM_WORLD.rank}.msh", square_with_hole)
    with pytest.raises(InputError, match=r"void = true") as info:
        hf.build_rve(hf.RVESpec("file", 2, path=str(path)))
    message = str(info.value)
    assert "bounding box [0, 1] × [0, 1] has area 1 " in message
    measured = float(message.split(" measure ")[1].split()[0])
    # the polygonal hole is a little smaller than the disk: O(h²) relative, below 1%
    assert measured == pytest.approx(1 - math.pi * RADIUS**2, rel=0.01)
    # declared pores: a porous cell, its porosity the unmeshed part
    rve = hf.build_rve(hf.RVESpec("file", 2, path=str(path), void=True))
    assert rve.fraction == pytest.approx(1 - measured, rel=1e-5)


def test_user_mesh_with_overlapping_cells_is_refused(tmp_path):
    path = _msh(tmp_path / f"overlap_{MPI.COMM_WORLD.rank}.msh", square_and_overlapping_disk)
    with pytest.raises(InputError, match=r"measure 1\.2\d+ but .* has area 1: cells overlap"):
        hf.build_rve(hf.RVESpec("file", 2, path=str(path)))


def test_user_mesh_with_an_inclusion_group_declared_void_is_refused(tmp_path):
    path = hf.rve.mesh.write_msh(
        hf.RVESpec("inclusion", 2, 0.2, 0.2), tmp_path / f"cell_{MPI.COMM_WORLD.rank}.msh"
    )
    with pytest.raises(InputError, match=r"declared void, but the mesh file .* 'inclusion' group"):
        hf.build_rve(hf.RVESpec("file", 2, path=str(path), void=True))


CELL = """\
[rve]
kind = "file"
dim = 2
path = "{path}"
[physics]
kind = "diffusion"
[materials.matrix]
k = 1.0
"""


def test_cli_porous_user_mesh_needs_the_void_declared(tmp_path, capsys):
    path = _msh(tmp_path / f"holed_{MPI.COMM_WORLD.rank}.msh", square_with_hole)
    cell = tmp_path / "cell.toml"
    cell.write_text(textwrap.dedent(CELL.format(path=path.name)))
    assert main(["homogenize", str(cell)]) == 2
    err = cli_error(capsys)
    assert "not meshed" in err and "void = true" in err and "Traceback" not in err
    cell.write_text(CELL.format(path=path.name) + "[materials.inclusion]\nvoid = true\n")
    assert main(["homogenize", str(cell), "--json", str(tmp_path / "out.json")]) == 0
