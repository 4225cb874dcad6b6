"""Image (voxel) cells and quadrilateral/hexahedral meshes against closed forms and gmsh twins.

References: the laminate closed forms and Keller–Dykhne (../shared/references.md), the phase
tensor of a homogeneous cell, gmsh-made quadrilateral/hexahedral ``.msh`` files of the same
cells (structured by transfinite meshing, independent of the voxel mesher), and the J2 point
law. Every test runs on ``MPI.COMM_SELF``.
"""

import json
import math
import os
import re
import subprocess
from pathlib import Path

import gmsh
import numpy as np
import pytest
from conftest import EPOXY, GLASS, conductivities, glass_epoxy, relative
from PIL import Image
from test_history_cell import GLASS as GLASS_LAW
from test_history_cell import (
    MATRIX,
    assert_consistent_tangent_at_a_plastic_state,
    embed,
    laminate_reference,
    path,
    walk,
)
from test_homogenize import laminate_conductivity, laminate_stiffness
from test_nonlinear import CASES as NONLINEAR
from test_run import DIFFUSION

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.errors import InputError
from hmm_fenics.micro.cell_problem import cell_problem
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.nonlinear import finite_difference_tangent, nonlinear_cell_problem
from hmm_fenics.point_laws import IN_PLANE, Elastic, J2Plasticity
from hmm_fenics.rve.geometry import gmsh_session
from hmm_fenics.rve.mesh import write_msh

EPS = np.finfo(float).eps
LABELS = {"matrix": 0, "inclusion": 1}


def laminate_labels(n: int, layer: int, dim: int) -> np.ndarray:
    """Labels ``[x1, x2(, x3)]`` of a laminate: the first ``layer`` of ``n`` columns along x1."""
    a = np.zeros((n,) * dim, dtype=np.int32)
    a[:layer] = 1
    return a


def checkerboard_labels(n: int) -> np.ndarray:
    """An ``n`` × ``n`` picture of the 2×2 checkerboard: inclusion at lower left and upper right."""
    i = np.arange(n)
    return ((i[:, None] < n // 2) == (i[None, :] < n // 2)).astype(np.int32)


def save_npy(path, labels) -> str:
    np.save(path, labels)
    return str(path)


def image_spec(path, dim, h, **kw) -> hf.RVESpec:
    return hf.RVESpec(
        "image", dim, path=str(path), voxel_size=h, labels=kw.pop("labels", LABELS), **kw
    )


@pytest.mark.parametrize(
    ("dim", "mesh"), [(2, "voxel"), (2, "simplex"), (3, "voxel"), (3, "simplex")]
)
def test_laminate_image_is_the_exact_laminate(tmp_path, dim, mesh):
    n, layer = (10, 3) if dim == 2 else (5, 2)  # f = 0.3 and 0.4
    f = layer / n
    spec = image_spec(
        save_npy(tmp_path / "lam.npy", laminate_labels(n, layer, dim)), dim, 1 / n, mesh=mesh
    )
    rve = hf.build_rve(spec)
    assert rve.fraction == pytest.approx(f, abs=1e-15) and np.allclose(rve.upper, 1.0)
    diffusion = hf.homogenize(rve, hf.Diffusion(dim), conductivities())
    # the exact solution is piecewise linear across conforming layers: P1 has it, round-off only
    np.testing.assert_allclose(
        diffusion.tensor, laminate_conductivity(1.0, 10.0, f, dim), atol=1e4 * EPS
    )
    physics = hf.Elasticity(dim)
    elastic = hf.homogenize(rve, physics, glass_epoxy())
    expected = laminate_stiffness([EPOXY.tensor(physics), GLASS.tensor(physics)], [1 - f, f], dim)
    np.testing.assert_allclose(elastic.tensor, expected, atol=1e-11 * np.abs(expected).max())
    assert elastic.hill_mandel_residual < 1e-12 and elastic.gradient_error < 1e-12


def checkerboard_msh(
    path, n: int, order: int = 1, recombine: str = "all", groups=("matrix", "inclusion")
) -> str:
    """The 2×2 checkerboard meshed by gmsh: four transfinite squares of n/2 × n/2 quadrilaterals.

    ``recombine``: ``"all"`` (quadrilaterals), ``"matrix"`` (the inclusion in triangles).
    ``groups``: the physical groups written (the cells of the others are left out).
    """
    with gmsh_session():
        occ = gmsh.model.occ
        squares = [occ.addRectangle(x, y, 0, 0.5, 0.5) for y in (0, 0.5) for x in (0, 0.5)]
        occ.fragment([(2, squares[0])], [(2, s) for s in squares[1:]])
        occ.synchronize()
        inclusion, matrix = [], []
        for _, tag in gmsh.model.getEntities(2):
            x0, y0, _, x1, y1, _ = gmsh.model.getBoundingBox(2, tag)
            (inclusion if (x0 + x1 < 1) == (y0 + y1 < 1) else matrix).append(tag)
        for _, tag in gmsh.model.getEntities(1):
            gmsh.model.mesh.setTransfiniteCurve(tag, n // 2 + 1)
        for tag in inclusion + matrix:
            gmsh.model.mesh.setTransfiniteSurface(tag)
            if recombine == "all" or tag in matrix:
                gmsh.model.mesh.setRecombine(2, tag)
        for tag, (name, entities) in enumerate([("matrix", matrix), ("inclusion", inclusion)]):
            if name in groups:
                gmsh.model.addPhysicalGroup(2, entities, tag + 1, name=name)
        gmsh.model.mesh.generate(2)
        if order > 1:
            gmsh.model.mesh.setOrder(order)
        gmsh.write(str(path))
    return str(path)


def test_checkerboard_image_equals_its_gmsh_twin_and_converges_at_the_corner_rate(tmp_path):
    k1, k2 = 1.0, 10.0
    errors = []
    for n in (8, 16, 32, 64):
        spec = image_spec(save_npy(tmp_path / f"cb{n}.npy", checkerboard_labels(n)), 2, 1 / n)
        image = hf.homogenize(spec, hf.Diffusion(2), conductivities(k1, k2), check=False)
        K = image.tensor
        assert abs(K[0, 0] - K[1, 1]) < 1e3 * EPS * k2 and abs(K[0, 1]) < 1e3 * EPS * k2
        errors.append(K[0, 0] / math.sqrt(k1 * k2) - 1)
        if n <= 16:
            twin = hf.homogenize(
                hf.RVESpec("file", 2, path=checkerboard_msh(tmp_path / f"cb{n}.msh", n)),
                hf.Diffusion(2),
                conductivities(k1, k2),
                check=False,
            )
            # the same quadrilaterals, numbered differently: equal up to the solve's round-off
            np.testing.assert_allclose(K, twin.tensor, atol=1e3 * EPS * k2)
    # Keller–Dykhne: √(k1 k2), approached from above (conforming P1 overestimates the
    # energy) and slowly: near a corner u ~ r^λ with λ = (4/π) arctan √(k1/k2), so the
    # energy error falls like h^(2λ) (2λ = 0.78 for k2/k1 = 10)
    rates = np.log2(np.array(errors[:-1]) / errors[1:])
    expected = 2 * (4 / math.pi) * math.atan(math.sqrt(k1 / k2))
    assert all(e > 0 for e in errors) and errors[-1] < 0.03
    # pre-asymptotic at 8 pixels (0.84), then 0.81 and 0.80: within 0.03 of the rate
    assert abs(rates[-1] - expected) < 0.03 and rates[0] > rates[1] > rates[2]


def test_picture_and_npy_describe_the_same_cell(tmp_path):
    rng = np.random.default_rng(3)
    labels = (rng.random((12, 9)) < 0.35).astype(np.int32)  # [x1, x2]; not symmetric
    picture = (labels.T[::-1] * 200).astype(np.uint8)  # rows from the top, grey 0 and 200
    Image.fromarray(picture).save(tmp_path / "cell.png")
    Image.fromarray(picture.astype(np.uint16) * 300).save(tmp_path / "cell.tif")
    Image.fromarray(picture).convert("RGBA").save(tmp_path / "rgba.png")  # grey, opaque
    save_npy(tmp_path / "cell.npy", labels)
    save_npy(tmp_path / "wide.npy", np.where(labels == 1, 2**40, -1))  # any integers
    physics, materials = hf.Diffusion(2), conductivities()
    tensors = {
        name: hf.homogenize(
            image_spec(tmp_path / name, 2, 0.1, labels=grey), physics, materials
        ).tensor
        for name, grey in [
            ("cell.npy", LABELS),
            ("cell.png", {"matrix": 0, "inclusion": 200}),
            ("cell.tif", {"matrix": 0, "inclusion": 60000}),
            ("rgba.png", {"matrix": 0, "inclusion": 200}),
            ("wide.npy", {"matrix": -1, "inclusion": 2**40}),
        ]
    }
    # orientation matters: this cell has a shear coupling whose sign flips with the picture
    assert abs(tensors["cell.npy"][0, 1]) > 1e-3
    for name in ("cell.png", "cell.tif", "rgba.png", "wide.npy"):
        np.testing.assert_allclose(tensors[name], tensors["cell.npy"], atol=1e3 * EPS * 10)
    save_npy(tmp_path / "flipped.npy", labels[:, ::-1])
    flipped = hf.homogenize(image_spec(tmp_path / "flipped.npy", 2, 0.1), physics, materials).tensor
    assert relative(flipped, tensors["cell.npy"]) > 1e-3


def phase_tensor_cell(physics, degree, rve):
    material = hf.IsotropicElastic(E=5.0, nu=0.3)
    result = hf.homogenize(rve, physics, {"matrix": material, "inclusion": material}, degree)
    return result.tensor, material.tensor(physics)


@pytest.mark.parametrize(("dim", "degree"), [(2, 1), (2, 2), (3, 1), (3, 2)])
def test_homogeneous_voxel_cell_returns_the_phase_tensor(tmp_path, dim, degree):
    labels = laminate_labels(4, 1, dim) if dim == 2 else laminate_labels(3, 1, dim)
    rve = hf.build_rve(image_spec(save_npy(tmp_path / "c.npy", labels), dim, 0.25))
    assert rve.mesh.topology.cell_type.name == ("quadrilateral" if dim == 2 else "hexahedron")
    C, expected = phase_tensor_cell(hf.Elasticity(dim), degree, rve)
    np.testing.assert_allclose(C, expected, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("order", [1, 2])
def test_quadrilateral_msh_of_first_and_second_order(tmp_path, order):
    rve = hf.build_rve(hf.RVESpec("file", 2, path=checkerboard_msh(tmp_path / "cb.msh", 8, order)))
    assert rve.mesh.geometry.cmaps[0].degree == order and rve.fraction == pytest.approx(
        0.5, abs=1e-14
    )
    C, expected = phase_tensor_cell(hf.Elasticity(2), 2, rve)
    np.testing.assert_allclose(C, expected, atol=1e-12 * np.abs(expected).max())


def laminate_box_msh(path, n: int, layer: float, order: int = 1) -> str:
    """A unit cube of two layers (x1 < layer: inclusion), transfinite and recombined: hexahedra."""
    with gmsh_session():
        occ = gmsh.model.occ
        a, b = occ.addBox(0, 0, 0, layer, 1, 1), occ.addBox(layer, 0, 0, 1 - layer, 1, 1)
        occ.fragment([(3, a)], [(3, b)])
        occ.synchronize()
        for _, tag in gmsh.model.getEntities(1):
            x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(1, tag)
            length = max(x1 - x0, y1 - y0, z1 - z0)
            gmsh.model.mesh.setTransfiniteCurve(tag, max(round(length * n), 1) + 1)
        for _, tag in gmsh.model.getEntities(2):
            gmsh.model.mesh.setTransfiniteSurface(tag)
            gmsh.model.mesh.setRecombine(2, tag)
        for _, tag in gmsh.model.getEntities(3):
            gmsh.model.mesh.setTransfiniteVolume(tag)
        inclusion = [
            t
            for _, t in gmsh.model.getEntities(3)
            if gmsh.model.getBoundingBox(3, t)[3] < layer + 1e-6
        ]
        matrix = [t for _, t in gmsh.model.getEntities(3) if t not in inclusion]
        gmsh.model.addPhysicalGroup(3, matrix, 1, name="matrix")
        gmsh.model.addPhysicalGroup(3, inclusion, 2, name="inclusion")
        gmsh.model.mesh.generate(3)
        if order > 1:
            gmsh.model.mesh.setOrder(order)
        gmsh.write(str(path))
    return str(path)


@pytest.mark.parametrize("order", [1, 2])
def test_hexahedral_msh_homogenizes_the_laminate_exactly(tmp_path, order):
    rve = hf.build_rve(
        hf.RVESpec("file", 3, path=laminate_box_msh(tmp_path / "lam.msh", 4, 0.25, order))
    )
    assert rve.mesh.topology.cell_type.name == "hexahedron"
    assert rve.mesh.geometry.cmaps[0].degree == order and rve.fraction == pytest.approx(
        0.25, abs=1e-14
    )
    result = hf.homogenize(rve, hf.Diffusion(3), conductivities())
    np.testing.assert_allclose(
        result.tensor, laminate_conductivity(1.0, 10.0, 0.25, 3), atol=1e4 * EPS
    )
    if order == 1:  # the voxel image of the same laminate: the same hexahedra
        labels = laminate_labels(4, 1, 3)
        image = hf.homogenize(
            image_spec(save_npy(tmp_path / "lam.npy", labels), 3, 0.25),
            hf.Diffusion(3),
            conductivities(),
        )
        np.testing.assert_allclose(image.tensor, result.tensor, atol=1e4 * EPS)


def test_incomplete_second_order_cells_are_read_as_complete_ones(tmp_path):
    """quad8/hex20 files (serendipity) get their centre nodes: the tensors of quad9/hex27."""
    for dim, make in [
        (2, lambda p, k: checkerboard_msh(p, 4, k)),
        (3, lambda p, k: laminate_box_msh(p, 2, 0.5, k)),
    ]:
        complete = hf.build_rve(hf.RVESpec("file", dim, path=make(tmp_path / f"c{dim}.msh", 2)))
        with gmsh_session():
            gmsh.option.setNumber("Mesh.SecondOrderIncomplete", 1)
            gmsh.merge(make(tmp_path / f"p{dim}.msh", 1))
            gmsh.model.mesh.setOrder(2)
            gmsh.write(str(tmp_path / f"i{dim}.msh"))
        incomplete = hf.build_rve(hf.RVESpec("file", dim, path=str(tmp_path / f"i{dim}.msh")))
        n_nodes = {2: 9, 3: 27}[dim]
        for rve in (complete, incomplete):
            assert rve.mesh.geometry.dofmaps[0].shape[1] == n_nodes
        assert len(incomplete.mesh.geometry.x) == len(complete.mesh.geometry.x)  # centres shared
        tensors = [
            hf.homogenize(rve, hf.Diffusion(dim), conductivities(), 2).tensor
            for rve in (complete, incomplete)
        ]
        # straight-sided cells: the added centres are where gmsh puts them, the same geometry
        np.testing.assert_allclose(tensors[1], tensors[0], atol=1e4 * EPS)


def test_unsupported_and_mixed_element_types_are_refused_clearly(tmp_path):
    path = tmp_path / "quad16.msh"
    with gmsh_session():
        gmsh.merge(checkerboard_msh(tmp_path / "q.msh", 4))
        gmsh.model.mesh.setOrder(3)
        gmsh.write(str(path))
    with pytest.raises(
        InputError, match=r"36 \(Quadrilateral 16\); accepted are 2 \(Triangle 3\), 3 \(Quadri"
    ) as err:
        hf.build_rve(hf.RVESpec("file", 2, path=str(path)))
    assert "np." not in str(err.value)
    mixed = checkerboard_msh(tmp_path / "mixed.msh", 4, recombine="matrix")
    with pytest.raises(
        InputError, match=r"mixes 2D element types 2 \(Triangle 3\), 3 \(Quadrilateral 4\)"
    ):
        hf.build_rve(hf.RVESpec("file", 2, path=mixed))


@pytest.mark.parametrize("dim", [2, 3])
def test_homogeneous_j2_voxel_cell_follows_the_single_point_law(tmp_path, dim):
    """The history cell's strain operator and quadrature data on quadrilaterals/hexahedra."""
    labels = laminate_labels(4, 1, dim) if dim == 2 else laminate_labels(2, 1, dim)
    rve = hf.build_rve(image_spec(save_npy(tmp_path / "c.npy", labels), dim, 0.25))
    law = J2Plasticity(*MATRIX)
    cell = history_cell_problem(hf.Elasticity(dim), rve, {"matrix": law, "inclusion": law})
    direction = np.array([1.0, -0.4, 0.5] if dim == 2 else [1.0, -0.4, 0.2, 0.1, -0.3, 0.5])
    gradients = [0.01 * f * direction for f in (1.0, 3.0, 0.0, -3.5)]
    cells = walk(cell, gradients)
    points = path(law, [embed(G) for G in gradients])
    comps = IN_PLANE if dim == 2 else np.arange(6)
    assert max(p[2][12] for p in points) > 0.01  # plastic, and reversed
    for s, (stress, tangent, state) in zip(cells, points, strict=True):
        # uniform fields: the fluctuation stays zero; round-off of the quadrature sums only
        np.testing.assert_allclose(s.flux, stress[comps], atol=1e-10 * np.abs(stress).max())
        np.testing.assert_allclose(
            s.tangent, tangent[comps][:, comps], atol=1e-10 * np.abs(tangent).max()
        )
        np.testing.assert_allclose(s.plastic_strain, state[12], rtol=1e-10)


def test_voxel_laminate_with_a_plastic_layer_is_the_exact_layered_solution(tmp_path):
    """Non-uniform fields on quadrilaterals: the history cell's quadrature has no hourglass."""
    f = 0.4
    rve = hf.build_rve(image_spec(save_npy(tmp_path / "l.npy", laminate_labels(5, 2, 2)), 2, 0.2))
    plastic, elastic = J2Plasticity(*MATRIX), Elastic(*GLASS_LAW)
    cell = history_cell_problem(
        hf.Elasticity(2), rve, {"inclusion": plastic, "matrix": elastic}, rtol=1e-13
    )
    assert cell.quadrature_degree == 2  # 2 × 2 Gauss points: exact on rectangles
    gradients = [0.01 * k * np.array([1.0, 0.3, 0.5]) for k in (1.0, 2.0, 4.0, 1.0, -4.0)]
    cells = walk(cell, gradients)
    assert cells[2].plastic_strain > 1e-3 and max(s.iterations for s in cells) >= 1
    for s, expected in zip(
        cells, laminate_reference([plastic, elastic], f, gradients), strict=True
    ):
        # conforming layers: the Q1 solution is the exact one; Newton to 1e-13
        np.testing.assert_allclose(s.flux, expected, atol=1e-10 * np.abs(expected).max())


def test_consistent_tangent_of_a_voxel_cell_matches_central_differences(tmp_path):
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[2:4, 1:4] = 1  # an elastic rectangle in a J2 matrix
    rve = hf.build_rve(image_spec(save_npy(tmp_path / "r.npy", labels), 2, 1 / 6))
    assert_consistent_tangent_at_a_plastic_state(rve)


def test_pores_in_an_image_are_holes_and_a_pore_layer_blocks_the_flux(tmp_path):
    labels = np.zeros((10, 6), dtype=np.int32)
    labels[4:6] = 2  # a pore layer normal to x1, inside the cell (f = 0.2)
    spec = image_spec(
        save_npy(tmp_path / "p.npy", labels),
        2,
        0.1,
        labels={"matrix": 0, "pore": 2},
        voids=("pore",),
    )
    rve = hf.build_rve(spec)
    assert (
        spec.void and rve.phases == {"matrix": 1} and rve.fraction == pytest.approx(0.2, abs=1e-15)
    )
    K = hf.homogenize(rve, hf.Diffusion(2), {"matrix": hf.Conductivity(2.0)}).tensor
    # no path across the pores: zero flux across; along: the solid's share of the arithmetic mean
    np.testing.assert_allclose(K, np.diag([0.0, 0.8 * 2.0]), atol=1e3 * EPS * 2.0)


@pytest.mark.parametrize("dim", [2, 3])
def test_an_image_whose_solid_touches_only_at_corners_or_edges_is_refused(tmp_path, dim):
    labels = np.ones((6,) * dim, dtype=np.int32)  # pores, with two solid blocks that touch
    labels[(slice(1, 3),) * dim] = 0  # at a corner (2D) or along an edge (3D)
    labels[(slice(3, 5),) * 2 + (slice(1, 3),) * (dim - 2)] = 0
    spec = image_spec(save_npy(tmp_path / "b.npy", labels), dim, 1.0, voids=("inclusion",))
    with pytest.raises(InputError, match="falls into 2 disconnected pieces"):
        hf.build_rve(spec)


@pytest.mark.parametrize("bc", ["periodic", "dirichlet", "oversampling"])
@pytest.mark.parametrize("kind", ["diffusion", "elasticity"])
def test_a_one_voxel_cell_is_its_phase(tmp_path, kind, bc):
    # periodic and Dirichlet leave no unknowns (the residual was 0/0: exit 1 before)
    path = save_npy(tmp_path / "one.npy", np.zeros((1, 1), np.int32))
    spec = image_spec(path, 2, 0.5, labels={"matrix": 0})
    physics = hf.Diffusion(2) if kind == "diffusion" else hf.Elasticity(2)
    phase = EPOXY if kind == "elasticity" else hf.Conductivity(2.0)
    result = hf.homogenize(spec, physics, {"matrix": phase}, bc=bc)
    expected = phase.tensor(physics)
    np.testing.assert_allclose(result.tensor, expected, atol=1e3 * EPS * expected.max())
    assert result.hill_mandel_residual < 1e-12


@pytest.mark.parametrize("dim", [2, 3])
def test_oversampling_takes_voxel_cells(tmp_path, dim):
    n, layer = (10, 3) if dim == 2 else (5, 2)
    f = layer / n
    spec = image_spec(save_npy(tmp_path / "lam.npy", laminate_labels(n, layer, dim)), dim, 1 / n)
    result = hf.homogenize(spec, hf.Diffusion(dim), conductivities(), bc="oversampling")
    # along the layers the affine Dirichlet data of the window is the exact field, and the
    # inner average of its flux the arithmetic mean; across them the window's faces perturb it
    arithmetic = laminate_conductivity(1.0, 10.0, f, dim)[1, 1]
    assert result.tensor[1, 1] == pytest.approx(arithmetic, rel=1e-12)
    assert result.tensor[0, 0] < arithmetic - 0.1


def test_oversampling_of_a_checkerboard_image_equals_its_quadrilateral_msh_twin(tmp_path):
    k1, k2 = 1.0, 10.0
    image = image_spec(save_npy(tmp_path / "cb.npy", checkerboard_labels(8)), 2, 1 / 8)
    twin = hf.RVESpec("file", 2, path=checkerboard_msh(tmp_path / "cb.msh", 8))
    K = [
        hf.homogenize(s, hf.Diffusion(2), conductivities(k1, k2), bc="oversampling").tensor
        for s in (image, twin)
    ]
    # the same quadrilaterals (built by DOLFINx, read from gmsh), numbered differently
    np.testing.assert_allclose(K[0], K[1], atol=1e3 * EPS * k2)
    second = hf.RVESpec("file", 2, path=checkerboard_msh(tmp_path / "cb2.msh", 8, order=2))
    with pytest.raises(InputError, match=r'micro\.bc = "oversampling".*first-order cells'):
        hf.homogenize(second, hf.Diffusion(2), conductivities(k1, k2), bc="oversampling")


def test_pores_that_do_not_match_on_opposite_faces_are_refused_as_periodic(tmp_path):
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[0, 2:4] = 1  # a pore on the face x1 = 0 only
    spec = image_spec(save_npy(tmp_path / "p.npy", labels), 2, 1.0, voids=("inclusion",))
    rve = hf.build_rve(spec)  # a cell for dirichlet (and neumann) conditions
    matrix = {"matrix": hf.Conductivity(1.0)}
    with pytest.raises(InputError, match=r'micro\.bc = "periodic": the pores of .* do not match'):
        cell_problem(hf.Diffusion(2), rve, matrix, bc="periodic")
    assert np.isfinite(
        cell_problem(hf.Diffusion(2), rve, matrix, bc="dirichlet").effective_tensor
    ).all()


def test_a_floating_point_tiff_is_refused_not_truncated(tmp_path):
    grey = np.zeros((8, 8), dtype=np.float32)
    grey[2:5, 2:5] = 1.7  # unsegmented grey levels: read as labels they became 1 before
    Image.fromarray(grey).save(tmp_path / "grey.tif")
    with pytest.raises(InputError, match=r"rve\.path: .*grey\.tif' is a floating-point picture"):
        hf.build_rve(image_spec(tmp_path / "grey.tif", 2, 1.0))


def shoelace(polygons):
    """Signed areas of polygons ``(n, m, 2)`` whose vertices go round the boundary."""
    x, y = polygons[..., 0], polygons[..., 1]
    return 0.5 * (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1)


def test_pictures_draw_second_order_cells_by_their_corners(tmp_path):
    from mpi4py import MPI

    import basix.ufl
    import ufl
    from dolfinx import mesh as dmesh

    from hmm_fenics.run.pictures import _polygons

    quad9 = hf.build_rve(hf.RVESpec("file", 2, path=checkerboard_msh(tmp_path / "q.msh", 4, 2)))
    # two 6-node triangles of the unit square: vertices, then the edge nodes (DOLFINx order:
    # edges 1-2, 0-2, 0-1)
    x = np.array(
        [[0, 0], [1, 0], [1, 1], [0, 1], [1, 0.5], [0.5, 0.5], [0.5, 0], [0.5, 1], [0, 0.5]]
    )
    cells = np.array([[0, 1, 2, 4, 5, 6], [0, 2, 3, 7, 8, 5]])
    element = ufl.Mesh(basix.ufl.element("Lagrange", "triangle", 2, shape=(2,)))
    tri6 = dmesh.create_mesh(MPI.COMM_SELF, cells, element, x.astype(np.float64))
    for mesh, corners in ((quad9.mesh, 4), (tri6, 3)):
        polygons = _polygons(mesh)
        assert polygons.shape[1:] == (corners, 2)  # the edge nodes made them cross before
        areas = np.abs(shoelace(polygons))
        # straight cells tile the unit square: the corner polygons measure it exactly
        assert areas.sum() == pytest.approx(1.0, rel=1e-12) and areas.min() > 0


def bad_image(tmp_path, case):
    """(spec keywords, expected message) of each bad image input."""
    npy = save_npy(tmp_path / "ok.npy", laminate_labels(4, 1, 2))
    garbage = tmp_path / "broken.png"
    garbage.write_bytes(b"not a picture")
    big = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.uint8, (2100, 2100))
    del big
    floats = tmp_path / "floats.npy"
    np.save(floats, np.zeros((3, 3)))
    return {
        "missing file": ({"path": str(tmp_path / "none.png")}, r"rve\.path: .* does not exist"),
        "unreadable": ({"path": str(garbage)}, r"rve\.path: .* is not a readable image"),
        "not labels": ({"path": str(floats)}, r"rve\.path: .* holds float64 values"),
        "format": ({"path": str(tmp_path / "ok.jpg")}, r"rve\.path"),
        "wrong dimension": (
            {"path": npy, "dim": 3},
            r"rve\.path: .* is a 2D image .* rve\.dim = 3",
        ),
        "too large": ({"path": str(tmp_path / "big.npy")}, r"rve\.path: .* 2100 × 2100 voxels"),
        "voxel size": ({"path": npy, "voxel_size": 0.0}, r"rve\.voxel_size must be positive"),
        "negative": ({"path": npy, "voxel_size": -1.0}, r"rve\.voxel_size must be positive"),
        "label absent": (
            {"path": npy, "labels": {"matrix": 0, "inclusion": 7}},
            r"rve\.labels\.inclusion: value\(s\) \[7\] occur nowhere",
        ),
        "value of no phase": (
            {"path": npy, "labels": {"matrix": 0}},
            r"rve\.labels: the pixel value\(s\) \[1\] .* belong to no phase",
        ),
        "no matrix": (
            {"path": npy, "labels": {"a": 0, "b": 1}},
            r"rve\.labels must name the matrix",
        ),
        "mesh": ({"path": npy, "mesh": "tetgen"}, r"rve\.mesh must be one of"),
    }[case]


CASES = [
    "missing file",
    "unreadable",
    "not labels",
    "format",
    "wrong dimension",
    "too large",
    "voxel size",
    "negative",
    "label absent",
    "value of no phase",
    "no matrix",
    "mesh",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_image_input_is_an_input_error_naming_the_key(tmp_path, case):
    (tmp_path / "ok.jpg").write_bytes(b"")
    keywords, message = bad_image(tmp_path, case)
    args = {"dim": 2, "voxel_size": 0.25, "labels": LABELS} | keywords
    with pytest.raises(InputError, match=message):
        hf.build_rve(hf.RVESpec("image", **args))


IMAGE_RVE = """\
[rve]
kind = "image"
dim = 2
path = "{path}"
voxel_size = {h}
[rve.labels]
matrix = 0
inclusion = {grey}
"""
CELL = IMAGE_RVE + DIFFUSION[DIFFUSION.index("[physics]") :]  # k = 1 and 10


@pytest.fixture
def folder(tmp_path):
    """One folder for all ranks (rank 0's tmp_path)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.bcast(tmp_path, root=0)


def on_rank_0(work):
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        work()
    MPI.COMM_WORLD.barrier()


def test_cell_file_image_homogenizes_and_writes_its_mesh(folder, capsys):
    labels = laminate_labels(10, 3, 2)
    picture = (labels.T[::-1] * 255).astype(np.uint8)
    on_rank_0(lambda: Image.fromarray(picture).save(folder / "lam.png"))
    cell = folder / "cell.toml"
    on_rank_0(lambda: cell.write_text(CELL.format(path="lam.png", h=0.1, grey=255)))
    assert main(["homogenize", str(cell), "--json", str(folder / "h.json"), "--overwrite"]) == 0
    result = json.loads((folder / "h.json").read_text())
    expected = laminate_conductivity(1.0, 10.0, 0.3, 2)
    np.testing.assert_allclose(result["tensor"], expected, atol=1e4 * EPS)
    assert result["fraction"] == pytest.approx(0.3, abs=1e-15)
    msh, png = folder / "lam.msh", folder / "lam_mesh.png"
    assert main(["rve", str(cell), "-o", str(msh), "--png", str(png), "--overwrite"]) == 0
    assert png.stat().st_size > 5_000
    again = hf.homogenize(hf.RVESpec("file", 2, path=str(msh)), hf.Diffusion(2), conductivities())
    np.testing.assert_allclose(again.tensor, expected, atol=1e4 * EPS)
    assert again.dofs == 11 * 11 - 0  # the quadrilaterals' grid nodes: 121 P1 dofs


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("voxel_size = 0.1", "voxel_size = -0.1"), r"rve\.voxel_size"),
        (("inclusion = 255", "inclusion = 7"), r"rve\.labels\.inclusion"),
        (('path = "lam.png"', 'path = "none.png"'), r"rve\.path"),
        (("inclusion = 255", 'inclusion = "white"'), r"rve\.labels\.inclusion"),
        (("[rve.labels]", "mesh = 1\n[rve.labels]"), r"rve\.mesh"),
        (("k = 10.0", "void = true"), r'micro\.bc = "periodic": the pores of .* do not match'),
    ],
)
def test_bad_cell_file_exits_2_naming_the_key(folder, capsys, change, key):
    from conftest import cli_error

    labels = laminate_labels(10, 3, 2)
    on_rank_0(
        lambda: Image.fromarray((labels.T[::-1] * 255).astype(np.uint8)).save(folder / "lam.png")
    )
    cell = folder / "cell.toml"
    text = CELL.format(path="lam.png", h=0.1, grey=255).replace(*change)
    on_rank_0(lambda: cell.write_text(text))
    assert main(["homogenize", str(cell)]) == 2
    assert re.search(key, cli_error(capsys))


RUN = DIFFUSION[: DIFFUSION.index("[rve]")] + "[output]\npng = false\n\n"  # u = 1 − x


def test_fe2_run_with_an_image_cell(folder):
    on_rank_0(lambda: save_npy(folder / "lam.npy", laminate_labels(10, 3, 2)))
    config = folder / "run.toml"
    on_rank_0(lambda: config.write_text(RUN + CELL.format(path="lam.npy", h=0.01, grey=1)))
    assert main(["run", str(config), "-o", str(folder / "out"), "-q"]) == 0
    data = json.loads((folder / "out" / "results.json").read_text())
    across = laminate_conductivity(1.0, 10.0, 0.3, 2)[0, 0]
    # u = 1 − x on the unit square: the flux −K11 ∂u/∂x = K11 through the unit edge; the
    # macro P1 field is exact, so only round-off remains
    assert data["reactions"]["left"][0] == pytest.approx(across, rel=1e-10)
    assert data["energy"] == pytest.approx(0.5 * across, rel=1e-10)


@pytest.mark.parametrize("case", ["power-law conductivity", "power-law elasticity 3D"])
def test_nonlinear_voxel_cell_has_its_consistent_tangent(tmp_path, case):
    physics, materials, _, G = NONLINEAR[case]
    n = 6 if physics.dim == 2 else 4
    labels = np.zeros((n,) * physics.dim, dtype=np.int32)
    labels[(slice(1, 3),) * physics.dim] = 1  # a square/cubic inclusion
    rve = hf.build_rve(image_spec(save_npy(tmp_path / "c.npy", labels), physics.dim, 1 / n))
    cell = nonlinear_cell_problem(physics, rve, materials)
    solution = cell.solve(G)
    assert solution.iterations >= 3  # really nonlinear at this gradient
    fd = finite_difference_tangent(
        lambda g: cell.solve(g, solution.fluctuation).flux, G, 1e-6 * np.abs(G).max()
    )
    # central differences: O(step²) truncation plus round-off·|σ|/step ≈ 1e-9 relative
    np.testing.assert_allclose(solution.tangent, fd, atol=1e-7 * np.abs(solution.tangent).max())


def strip_msh(path, n: int) -> str:
    """Quadrilaterals of the unit square without its middle strip 0.4 < x1 < 0.6 (a pore)."""
    with gmsh_session():
        occ = gmsh.model.occ
        parts = [occ.addRectangle(x0, 0, 0, x1 - x0, 1) for x0, x1 in [(0, 0.4), (0.6, 1)]]
        occ.synchronize()
        for _, tag in gmsh.model.getEntities(1):
            x0, y0, _, x1, y1, _ = gmsh.model.getBoundingBox(1, tag)
            gmsh.model.mesh.setTransfiniteCurve(tag, round(max(x1 - x0, y1 - y0) * n) + 1)
        for tag in parts:
            gmsh.model.mesh.setTransfiniteSurface(tag)
            gmsh.model.mesh.setRecombine(2, tag)
        gmsh.model.addPhysicalGroup(2, parts, 1, name="matrix")
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))
    return str(path)


def test_quadrilateral_msh_that_does_not_fill_its_box_is_refused(tmp_path):
    path = strip_msh(tmp_path / "strip.msh", 10)
    with pytest.raises(InputError, match=r"\(20% of it is not meshed\)"):
        hf.build_rve(hf.RVESpec("file", 2, path=path))
    porous = hf.build_rve(hf.RVESpec("file", 2, path=path, void=True))
    assert porous.fraction == pytest.approx(0.2, abs=1e-14)  # the void is the unmeshed part


@pytest.mark.parametrize("dim", [2, 3])
def test_second_order_simplices_are_accepted(tmp_path, dim):
    spec = (
        hf.RVESpec("inclusion", 2, 0.2, 0.1) if dim == 2 else hf.RVESpec("laminate", 3, 0.25, 0.34)
    )
    path = tmp_path / "p2.msh"
    with gmsh_session():
        gmsh.merge(str(write_msh(spec, tmp_path / "p1.msh")))
        gmsh.model.mesh.setOrder(2)
        gmsh.write(str(path))
    rve = hf.build_rve(hf.RVESpec("file", dim, path=str(path)))
    assert rve.mesh.geometry.cmaps[0].degree == 2
    C, expected = phase_tensor_cell(hf.Elasticity(dim), 2 if dim == 2 else 1, rve)
    np.testing.assert_allclose(C, expected, atol=1e-12 * np.abs(expected).max())


ROOT = Path(__file__).parent.parent


def sfepy_example_mesh() -> tuple[Path, Path] | None:
    """(python of the SfePy venv, SfePy's homogenization example RVE), or None.

    The venv is the benchmark's (bench/sfepy_env.sh): ``$SFEPY_VENV``, else ``.venv-sfepy``.
    """
    python = Path(os.environ.get("SFEPY_VENV", ROOT / ".venv-sfepy")) / "bin" / "python"
    if not python.is_file():
        return None
    where = subprocess.run(
        [str(python), "-c", "import sfepy; print(sfepy.data_dir)"],
        capture_output=True,
        text=True,
    )
    mesh = Path(where.stdout.strip()) / "meshes" / "3d" / "matrix_fiber.mesh"
    return (python, mesh) if where.returncode == 0 and mesh.is_file() else None


def test_sfepy_homogenization_example_rve_of_periodic_hexahedra(tmp_path):
    """SfePy's own example cell (1 952 hexahedra), converted in the test, against SfePy."""
    found = sfepy_example_mesh()
    if found is None:
        pytest.skip("SfePy is not installed (make bench, or bench/sfepy_env.sh, installs it)")
    python, source = found
    import meshio

    medit = meshio.read(source)  # medit groups: 1 matrix, 2 fibre
    groups = medit.cell_data["medit:ref"][0]
    msh = tmp_path / "matrix_fiber.msh"
    meshio.write(
        msh,
        meshio.Mesh(
            medit.points,
            [("hexahedron", medit.cells[0].data)],
            cell_data={"gmsh:physical": [groups], "gmsh:geometrical": [groups]},
            field_data={"matrix": np.array([1, 3]), "inclusion": np.array([2, 3])},
        ),
        file_format="gmsh22",
        binary=False,
    )
    rve = hf.build_rve(hf.RVESpec("file", 3, path=str(msh)))  # refused before this issue
    assert rve.mesh.topology.index_map(3).size_local == 1952
    result = hf.homogenize(rve, hf.Elasticity(3), glass_epoxy())
    assert result.hill_mandel_residual < 1e-12
    reference = tmp_path / "sfepy.json"
    script = ROOT / "bench" / "sfepy_cell.py"
    options = "--physics elasticity --dim 3 --matrix E=3,nu=0.35 --inclusion E=70,nu=0.2"
    options += f" --integral-order 6 --json {reference}"
    run = subprocess.run(
        [str(python), str(script), str(msh), *options.split()],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    expected = np.asarray(json.loads(reference.read_text())["tensor"])
    # the same P1 periodic problem; the hexahedra are distorted, so the two codes integrate
    # them differently: 3e-6 apart with SfePy's order 2, 8e-8 with order 6 (measured)
    np.testing.assert_allclose(result.tensor, expected, atol=1e-6 * np.abs(expected).max())


def test_keys_of_generated_cells_are_refused_for_an_image(tmp_path):
    path = save_npy(tmp_path / "c.npy", laminate_labels(4, 1, 2))
    with pytest.raises(InputError, match=r"rve\.fraction shapes generated cells"):
        image_spec(path, 2, 0.25, fraction=0.3)
    with pytest.raises(InputError, match=r"rve\.voxel_size applies to kind = \"image\" only"):
        hf.RVESpec("laminate", 2, 0.3, 0.1, voxel_size=0.1)
    with pytest.raises(InputError, match=r"rve\.cell of an image cell is its voxel counts"):
        image_spec(path, 2, 0.25, cell=(2.0, 1.0))


def test_a_graded_image_cell_is_refused_naming_the_key(tmp_path):
    import tomllib

    from hmm_fenics.run.schema import parse_run_config

    save_npy(tmp_path / "lam.npy", laminate_labels(10, 3, 2))
    text = RUN + CELL.format(path="lam.npy", h=0.1, grey=1)
    text += '[micro.graded]\nparameter = "fraction"\naxis = "x"\nstart = [0.0, 0.2]\n'
    text += "end = [1.0, 0.4]\nstep = 0.1\n"
    with pytest.raises(InputError, match=r"micro\.graded: .* rve\.fraction shapes generated"):
        parse_run_config(tomllib.loads(text), tmp_path)
