"""The RVE library: every kind meshes periodically, fractions are faithful, specs are
deterministic and cached, and the closed forms of regular and random media hold."""

import json

from mpi4py import MPI

import gmsh
import numpy as np
import pytest
from conftest import EPOXY, cli_error, conductivities, glass_epoxy, hashin_shtrikman

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.coupling.ensemble import ensemble, size_study
from hmm_fenics.errors import InputError
from hmm_fenics.rve.geometry import FRACTION_TOLERANCE
from hmm_fenics.rve.periodic import periodic_images

KINDS_2D = [
    {"kind": "inclusion"},
    {"kind": "inclusion", "shape": "ellipse", "aspect": 2.0, "angle": 30.0, "fraction": 0.3},
    {"kind": "inclusion", "center": (0.1, 0.2), "fraction": 0.3},
    {"kind": "square-array", "n": 3},
    {"kind": "hex-array"},
    {"kind": "checkerboard", "fraction": 0.5},
    {"kind": "laminate"},
    {"kind": "random", "count": 20, "fraction": 0.4},
    {"kind": "random", "count": 12, "fraction": 0.3, "shape": "ellipse", "aspect": 2.0},
    {"kind": "random", "count": 15, "fraction": 0.35, "radius_spread": 0.2},
    {"kind": "inclusion", "cell": (2.0, 1.0), "fraction": 0.2},
    {"kind": "random", "count": 8, "fraction": 0.3, "void": True},
]
KINDS_3D = [
    {"kind": "inclusion", "fraction": 0.2},
    {"kind": "inclusion", "shape": "ellipsoid", "aspect": 1.5, "angle": 20.0, "fraction": 0.1},
    {"kind": "cubic-array", "lattice": "simple", "fraction": 0.3},
    {"kind": "cubic-array", "lattice": "bcc", "fraction": 0.3},
    {"kind": "cubic-array", "lattice": "fcc", "fraction": 0.3},
    {"kind": "fibers", "lattice": "square", "fraction": 0.3},
    {"kind": "fibers", "lattice": "hex", "fraction": 0.3},
    {"kind": "laminate"},
    {"kind": "random", "count": 6, "fraction": 0.15, "min_gap": 0.05},
]


def check_periodic_and_fraction(rve, tol):
    x = rve.mesh.geometry.x
    periodic_images(x, rve.lower, rve.upper)  # raises if any face fails to match
    assert abs(rve.fraction / rve.spec.fraction - 1) < tol, (rve.fraction, rve.spec.fraction)


@pytest.mark.parametrize("kw", KINDS_2D, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_2d_kinds_mesh_periodic_with_faithful_fraction_at_the_default_size(kw):
    rve = hf.build_rve(hf.RVESpec(dim=2, **kw))
    check_periodic_and_fraction(rve, FRACTION_TOLERANCE)
    assert set(rve.phases) == ({"matrix"} if kw.get("void") else {"matrix", "inclusion"})


@pytest.mark.parametrize("kw", KINDS_3D, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_3d_kinds_mesh_periodic_with_faithful_fraction(kw):
    rve = hf.build_rve(hf.RVESpec(dim=3, mesh_size=0.125, **kw))
    check_periodic_and_fraction(rve, FRACTION_TOLERANCE)


@pytest.mark.parametrize(
    "kw", [{"kind": "inclusion"}, {"kind": "random", "count": 10, "fraction": 0.3}]
)
def test_fraction_within_0_2_percent_on_fine_meshes(kw):
    rve = hf.build_rve(hf.RVESpec(dim=2, mesh_size=0.01, **kw))
    check_periodic_and_fraction(rve, 0.002)


def test_identical_specs_give_identical_meshes_and_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("HMM_FENICS_CACHE", str(tmp_path))
    spec = hf.RVESpec("random", 2, count=10, fraction=0.3, seed=5)
    fresh = [hf.build_rve(spec, cache=False).mesh.geometry.x for _ in range(2)]
    np.testing.assert_array_equal(fresh[0], fresh[1])
    first = hf.build_rve(spec)
    files = list(tmp_path.glob("*.msh"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = hf.build_rve(spec)  # read back from the cache: the file is not rewritten
    assert files[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first.mesh.geometry.x, again.mesh.geometry.x)
    other = hf.build_rve(hf.RVESpec("random", 2, count=10, fraction=0.3, seed=6), cache=False)
    assert other.mesh.geometry.x.shape != first.mesh.geometry.x.shape or not np.allclose(
        other.mesh.geometry.x, first.mesh.geometry.x
    )


def test_hex_array_is_isotropic_in_the_plane():
    physics = hf.Elasticity(2)
    C = hf.homogenize(hf.RVESpec("hex-array", 2, 0.5, 0.02), physics, glass_epoxy()).tensor
    # tensor notation: C1212 = C[2, 2] / 2 in Mandel
    assert abs(C[0, 0] - C[1, 1]) / C[0, 0] < 5e-3
    assert abs((C[0, 0] - C[0, 1]) - C[2, 2]) / C[2, 2] < 5e-3


def test_checkerboard_matches_keller_dykhne():
    result = hf.homogenize(
        hf.RVESpec("checkerboard", 2, 0.5, 0.01), hf.Diffusion(2), conductivities(1.0, 10.0)
    )
    expected = np.sqrt(1.0 * 10.0)
    np.testing.assert_allclose(np.diag(result.tensor), expected, rtol=3e-2)


@pytest.mark.parametrize("dim", [2, 3])
def test_random_cells_inside_hashin_shtrikman(dim):
    spec = (
        hf.RVESpec("random", 2, count=20, fraction=0.4)
        if dim == 2
        else hf.RVESpec("random", 3, count=6, fraction=0.15, mesh_size=0.1, min_gap=0.05)
    )
    result = hf.homogenize(spec, hf.Diffusion(dim), conductivities())
    lower, upper = hashin_shtrikman(1.0, 10.0, result.fraction, dim)
    eigs = np.linalg.eigvalsh(result.tensor)
    assert lower < eigs.min() and eigs.max() < upper, (lower, eigs, upper)


def test_ensemble_statistics_and_shrinking_confidence_interval():
    spec = hf.RVESpec("random", 2, count=6, fraction=0.3, mesh_size=0.04)
    few = ensemble(spec, hf.Diffusion(2), conductivities(), 4)
    many = ensemble(spec, hf.Diffusion(2), conductivities(), 12)
    assert many.tensors.shape == (12, 2, 2)
    np.testing.assert_allclose(many.tensors[:4], few.tensors, rtol=1e-10)  # same seeds, same cells
    np.testing.assert_allclose(many.mean, many.tensors.mean(axis=0))
    assert many.ci95[0, 0] < few.ci95[0, 0]
    # realizations differ (small anisotropic cells), but each is inside the Wiener bounds
    assert np.ptp(many.tensors[:, 0, 0]) > 0
    f = many.fractions[:, None]
    eigs = np.linalg.eigvalsh(many.tensors)
    assert np.all(eigs > 1 / (f / 10.0 + (1 - f) / 1.0)) and np.all(eigs < f * 10.0 + (1 - f))


def test_size_study_variance_decays():
    spec = hf.RVESpec("random", 2, count=2, fraction=0.3, mesh_size=0.05, min_gap=0.03)
    study = size_study(spec, hf.Diffusion(2), conductivities(), scales=[1.0, 2.0], realizations=6)
    assert study.counts.tolist() == [2, 8]
    assert study.variances[1] < study.variances[0]
    assert study.exponent > 0


@pytest.mark.parametrize(
    ("dim", "kw"),
    [
        (2, {"kind": "inclusion", "fraction": 0.3}),
        (2, {"kind": "random", "count": 8, "fraction": 0.25}),
        (3, {"kind": "inclusion", "fraction": 0.2, "mesh_size": 0.125}),
    ],
)
@pytest.mark.parametrize("physics_kind", ["diffusion", "elasticity"])
def test_porous_cells_give_finite_positive_definite_tensors(dim, kw, physics_kind):
    spec = hf.RVESpec(dim=dim, void=True, **kw)
    physics = hf.Diffusion(dim) if physics_kind == "diffusion" else hf.Elasticity(dim)
    material = hf.Conductivity(1.0) if physics_kind == "diffusion" else EPOXY
    result = hf.homogenize(spec, physics, {"matrix": material})
    C = result.tensor
    assert np.all(np.isfinite(C))
    eigs = np.linalg.eigvalsh(C)
    assert eigs.min() > 0
    # pores soften: below the solid's tensor (upper bound (1 − f) C_matrix for the Voigt mean)
    assert np.linalg.eigvalsh((1 - result.fraction) * material.tensor(physics) - C).min() > 0
    assert result.hill_mandel_residual < 1e-10


def test_disconnected_porous_solid_is_refused(tmp_path):
    """A matrix of separate strips: the middle one could translate freely."""
    path = tmp_path / "strips.msh"
    with hf.rve.geometry.gmsh_session():
        occ = gmsh.model.occ
        strips = [
            occ.addRectangle(0, y0, 0, 1, y1 - y0) for y0, y1 in ((0, 0.3), (0.4, 0.6), (0.7, 1.0))
        ]
        occ.synchronize()
        gmsh.model.addPhysicalGroup(2, strips, 1, name="matrix")
        hf.rve.geometry.set_periodic(2, (1.0, 1.0))
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.1)
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))
    with pytest.raises(InputError, match="falls into 2 disconnected pieces"):
        hf.build_rve(hf.RVESpec("file", 2, path=str(path), void=True))


BAD_SPECS = {
    "rsa cannot reach": (
        {"kind": "random", "count": 30, "fraction": 0.7},
        r"random packing reached fraction 0\.\d+ with \d+ of 30",
    ),
    "inclusion larger than cell": (
        {"kind": "random", "count": 1, "fraction": 0.9},
        "larger than the cell",
    ),
    "disk array too dense": (
        {"kind": "square-array", "n": 2, "fraction": 0.8},
        "touch at fraction 0.7854",
    ),
    "negative gap": ({"kind": "random", "min_gap": -0.1}, "min_gap must be ≥ 0"),
    "aspect zero": (
        {"kind": "inclusion", "shape": "ellipse", "aspect": 0.0},
        "aspect must be a positive",
    ),
    "aspect negative": (
        {"kind": "random", "shape": "ellipse", "aspect": -2.0},
        "aspect must be a positive",
    ),
    "unknown lattice": ({"kind": "hex-array", "lattice": "fcc"}, None),
    "checkerboard fraction": (
        {"kind": "checkerboard", "fraction": 0.3},
        "fraction 0.5 by construction",
    ),
    "bad shape": ({"kind": "inclusion", "shape": "sphere"}, "rve.shape must be one of"),
    "bad cell": (
        {"kind": "inclusion", "cell": (1.0, -1.0)},
        "rve.cell must hold 2 positive lengths",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_geometry_input(case):
    kw, message = BAD_SPECS[case]
    with pytest.raises(InputError, match=message):
        hf.build_rve(hf.RVESpec(dim=2, **kw), cache=False)


def test_void_matrix_is_refused(tmp_path, capsys):
    cell = tmp_path / "cell.toml"
    cell.write_text(
        '[rve]\nkind = "inclusion"\ndim = 2\n[physics]\nkind = "diffusion"\n[materials.matrix]\nvoid = true\n[materials.inclusion]\nk = 1.0\n'
    )
    assert main(["homogenize", str(cell)]) == 2
    assert "void matrix leaves nothing to carry load" in cli_error(capsys)


@pytest.mark.serial
def test_rve_preview_and_realizations_from_the_cli(tmp_path):
    import meshio

    cell = tmp_path / "cell.toml"
    cell.write_text(
        '[rve]\nkind = "random"\ndim = 2\ncount = 6\nfraction = 0.3\nmesh_size = 0.04\n'
        '[physics]\nkind = "diffusion"\n[materials.matrix]\nk = 1.0\n[materials.inclusion]\nk = 10.0\n'
    )
    assert (
        main(["rve", str(cell), "-o", str(tmp_path / "c.msh"), "--png", str(tmp_path / "c.png")])
        == 0
    )
    back = meshio.read(tmp_path / "c.xdmf")
    assert len(back.cells_dict["triangle"]) > 100
    assert set(np.unique(back.cell_data["phase"][0])) == {1, 2}
    assert (tmp_path / "c.png").stat().st_size > 10_000
    # files are not overwritten without asking
    assert main(["rve", str(cell), "-o", str(tmp_path / "c.msh")]) == 2
    assert (
        main(["homogenize", str(cell), "--realizations", "3", "--json", str(tmp_path / "e.json")])
        == 0
    )
    data = json.loads((tmp_path / "e.json").read_text())
    assert np.shape(data["tensors"]) == (3, 2, 2) and np.shape(data["ci95"]) == (2, 2)


MESHES = __import__("pathlib").Path(__file__).parent.parent / "meshes"


@pytest.mark.parametrize(
    ("name", "dim"), [("hex_fibers", 2), ("random_pores", 2), ("sphere_bcc", 3)]
)
def test_committed_example_meshes_are_periodic_and_match_their_specs(name, dim):
    from hmm_fenics.config import load_cell_config

    config = load_cell_config(MESHES / f"{name}.toml")
    spec = hf.RVESpec("file", dim, path=str(MESHES / f"{name}.msh"), void=config.rve.void)
    rve = hf.build_rve(spec)
    assert abs(rve.fraction / config.rve.fraction - 1) < 0.01
    np.testing.assert_allclose(rve.upper, config.rve.lengths, rtol=1e-12)
    result = hf.homogenize(rve, config.physics, config.materials)
    assert np.linalg.eigvalsh(result.tensor).min() > 0
    assert result.hill_mandel_residual < 1e-10


@pytest.mark.parametrize("lattice, section", [("square", "inclusion"), ("hex", "hex-array")])
def test_fibers_are_bonded_to_the_matrix(lattice, section):
    """Straight fibres: along them the conductivity is the arithmetic mean, exactly; across
    them it is that of the 2D cross-section (a fibre that is not bonded would insulate)."""
    k = conductivities()
    fibers = hf.homogenize(hf.RVESpec("fibers", 3, 0.5, 0.1, lattice=lattice), hf.Diffusion(3), k)
    f = fibers.fraction
    axial = f * k["inclusion"].k + (1 - f) * k["matrix"].k
    assert fibers.tensor[2, 2] == pytest.approx(axial, rel=1e-6)
    plane = hf.homogenize(hf.RVESpec(section, 2, 0.5, 0.05), hf.Diffusion(2), k).tensor
    # the 3D mesh (h = 0.1) is coarser than the 2D one (0.05): a few per cent apart at most
    np.testing.assert_allclose(np.diag(fibers.tensor)[:2], np.diag(plane), rtol=0.02)


def test_unbonded_phases_in_a_user_mesh_are_refused(tmp_path):
    """A disk meshed apart from the matrix hole it fills: two nodes at each interface place."""
    from hmm_fenics.rve.geometry import gmsh_session, set_periodic

    path = tmp_path / f"unbonded_{MPI.COMM_WORLD.rank}.msh"
    with gmsh_session():
        occ = gmsh.model.occ
        cell, hole = occ.addRectangle(0, 0, 0, 1, 1), occ.addDisk(0.5, 0.5, 0, 0.3, 0.3)
        matrix = occ.cut([(2, cell)], [(2, hole)])[0][0][1]
        disk = occ.addDisk(0.5, 0.5, 0, 0.3, 0.3)  # fills the hole, but is not fragmented
        occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [matrix], 1, name="matrix")
        gmsh.model.addPhysicalGroup(2, [disk], 2, name="inclusion")
        set_periodic(2, (1.0, 1.0))
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.1)
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))
    with pytest.raises(InputError, match=r"node\(s\) of the RVE mesh sit where another node is"):
        hf.build_rve(hf.RVESpec("file", 2, path=str(path)))


@pytest.mark.parametrize(
    ("cell_type", "degree", "dim"),
    [
        ("triangle", 1, 2),
        ("triangle", 2, 2),
        ("quadrilateral", 1, 2),
        ("tetrahedron", 1, 3),
        ("hexahedron", 1, 3),
    ],
)
def test_serial_mesh_is_the_mesh_dolfinx_create_mesh_builds(cell_type, degree, dim):
    """The fast entry point (``rve.serial_mesh``) gives the same nodes, cells and cell order
    as ``dolfinx.mesh.create_mesh``: a DOLFINx upgrade that changed one must fail here."""
    import basix.ufl
    from dolfinx import mesh as dmesh

    from hmm_fenics.rve.serial_mesh import serial_mesh

    n = 6 if dim == 2 else 3
    kind = dmesh.CellType[cell_type]
    create = dmesh.create_unit_square if dim == 2 else dmesh.create_unit_cube
    reference = create(MPI.COMM_SELF, *([n] * dim), kind)
    # a second-order geometry from the first-order one: the cells' nodes in DOLFINx order
    element = basix.ufl.element("Lagrange", cell_type, degree, shape=(dim,))
    if degree == 1:
        x, cells = reference.geometry.x[:, :dim], reference.geometry.dofmaps[0]
    else:
        from dolfinx import fem

        V = fem.functionspace(reference, element)
        x = V.tabulate_dof_coordinates()[:, :dim]
        cells = V.dofmap.list
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(len(cells))  # input cells in no particular order
    cells = np.asarray(cells, dtype=np.int64)[shuffled]
    expected = dmesh.create_mesh(
        MPI.COMM_SELF, cells, basix.ufl.element("Lagrange", cell_type, degree, shape=(dim,)), x
    )
    fast = serial_mesh(cells, element, x)
    np.testing.assert_array_equal(fast.geometry.x, expected.geometry.x)
    np.testing.assert_array_equal(fast.geometry.dofmaps[0], expected.geometry.dofmaps[0])
    np.testing.assert_array_equal(
        fast.topology.original_cell_index, expected.topology.original_cell_index
    )
    assert fast.topology.cell_type == expected.topology.cell_type
    assert fast.geometry.cmaps[0].degree == degree
    assert fast.ufl_domain() is not expected.ufl_domain()  # each mesh its own UFL domain
