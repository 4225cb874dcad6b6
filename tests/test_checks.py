"""Checks of a cell solution that can fail: a wrong periodic map is caught.

Hill–Mandel and the symmetry of the flux-averaged tensor are identities of the Galerkin system
(round-off for any prolongation P); ⟨ε⟩ = G over the whole box and the agreement of w on
matched face nodes are not. Every test here is a micro test on ``MPI.COMM_SELF``.
"""

import numpy as np
import pytest
from conftest import EPOXY, glass_epoxy

import hmm_fenics as hf
from hmm_fenics.coupling.restriction import VolumeAverager, check_averages
from hmm_fenics.rve import periodic

EPS = np.finfo(float).eps

CASES = {
    "solid diffusion": (
        hf.RVESpec("inclusion", 2, 0.3, 0.1),
        hf.Diffusion(2),
        {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)},
    ),
    "solid elasticity": (hf.RVESpec("inclusion", 2, 0.3, 0.1), hf.Elasticity(2), glass_epoxy()),
    "porous elasticity": (
        hf.RVESpec("inclusion", 2, 0.3, 0.1, void=True),
        hf.Elasticity(2),
        {"matrix": EPOXY},
    ),
    "random pores (cut by the faces)": (
        hf.RVESpec("random", 2, 0.25, 0.1, count=6, void=True),
        hf.Diffusion(2),
        {"matrix": hf.Conductivity(1.0)},
    ),
}


def misrouted_images(points, lower, upper):
    """A wrong periodic pairing: every max-face node is tied to another node's image."""
    image = ORIGINAL_IMAGES(points, lower, upper).copy()
    moved = np.flatnonzero(image != np.arange(len(image)))
    image[moved] = image[np.roll(moved, 1)]
    return image


ORIGINAL_IMAGES = periodic.periodic_images


@pytest.mark.parametrize("case", list(CASES))
def test_a_correct_map_passes_every_check(case):
    spec, physics, materials = CASES[case]
    result = hf.homogenize(spec, physics, materials)
    # all round-off: sums of O(1) terms over a few hundred cells
    assert result.hill_mandel_residual < 1e3 * EPS
    assert result.symmetry_error < 1e3 * EPS
    assert result.gradient_error < 1e3 * EPS  # was NaN for porous cells
    assert result.periodicity_error < 1e3 * EPS


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_periodic_map_is_caught_where_hill_mandel_is_blind(case, monkeypatch):
    spec, physics, materials = CASES[case]
    monkeypatch.setattr(periodic, "periodic_images", misrouted_images)
    rve = hf.build_rve(spec)  # the mesh is right; only P pairs the faces wrongly
    cell = hf.cell_problem(physics, rve, materials)
    checks = check_averages(cell)
    F = cell.flux_tensor
    # the identities hold whatever P is ...
    assert checks.hill_mandel_residual < 1e3 * EPS
    assert np.linalg.norm(F - F.T) / np.linalg.norm(F) < 1e3 * EPS
    # ... the new checks fail by orders of magnitude above round-off
    assert checks.periodicity_error > 1e-2
    assert checks.gradient_error > 1e-4


@pytest.mark.parametrize("kind", ["diffusion", "elasticity"])
def test_pore_boundary_term_gives_the_box_average(kind):
    """⟨∇f⟩ over the box of a P2 field known in closed form, on a cell with a hole.

    f = y1² (e1 for elasticity) on the unit cell: ∫_Y ∇f = ∫_{∂Y} f n = e1 (only the face y1 = 1
    contributes), so ⟨∇f⟩_Y = e1 (Mandel: ε11 = 1), although the solid alone gives less. P2
    interpolates f exactly and the quadrature is exact, so the identity holds to round-off. A
    periodic field (cos 2πy1 sin 2πy2) averages to zero.
    """
    import ufl
    from dolfinx import fem

    physics = hf.Diffusion(2) if kind == "diffusion" else hf.Elasticity(2)
    material = hf.Conductivity(1.0) if kind == "diffusion" else EPOXY
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1, void=True))
    cell = hf.cell_problem(physics, rve, {"matrix": material}, degree=2)
    averager = VolumeAverager(cell)
    G = np.zeros(physics.n_components)
    fields = {
        "square": (lambda x: x[0] ** 2, np.eye(physics.n_components)[0]),
        "periodic": (lambda x: np.cos(2 * np.pi * x[0]) * np.sin(2 * np.pi * x[1]), 0.0 * G),
    }
    for name, (f, expected) in fields.items():
        if kind == "diffusion":
            averager.w.interpolate(f)
        else:
            averager.w.interpolate(lambda x, f=f: np.vstack([f(x), 0.0 * x[0]]))
        average = averager.average(G).gradient
        np.testing.assert_allclose(average, expected, atol=1e3 * EPS)
        if name == "square":  # the solid alone misses the hole: its ∫ ∂f/∂y1 is well below 1
            w1 = averager.w if kind == "diffusion" else averager.w[0]
            solid = fem.assemble_scalar(fem.form(w1.dx(0) * ufl.dx))
            assert solid < 1 - 0.1


@pytest.mark.parametrize(
    ("spec", "porous"),
    [
        (hf.RVESpec("inclusion", 2, 0.3, 0.1), False),
        (hf.RVESpec("inclusion", 2, 0.3, 0.1, void=True), True),
        (hf.RVESpec("random", 2, 0.3, 0.1, count=6, seed=2, void=True), True),
        (hf.RVESpec("inclusion", 3, 0.2, 0.25), False),
    ],
    ids=["solid disk", "void disk", "pores cut by the faces", "solid sphere"],
)
def test_pore_facets_are_the_exterior_facets_off_the_box(spec, porous):
    """A cell whose cells measure its box has no pore boundary, found without building its
    facets; a porous one has exactly the exterior facets that lie on no box face."""
    from dolfinx import mesh as dmesh

    from hmm_fenics.micro.boundary import pore_facets

    rve = hf.build_rve(spec)
    mesh, dim = rve.mesh, spec.dim
    holes = pore_facets(mesh, rve.lower, rve.upper)
    try:  # DOLFINx raises when the facets were never built
        built = mesh.topology.index_map(dim - 1) is not None
    except RuntimeError:
        built = False
    mesh.topology.create_connectivity(dim - 1, dim)
    exterior = dmesh.exterior_facet_indices(mesh.topology)
    middle = dmesh.compute_midpoints(mesh, dim - 1, exterior)[:, :dim]
    on_box = ((np.abs(middle - rve.lower) < 1e-9) | (np.abs(middle - rve.upper) < 1e-9)).any(axis=1)
    off_box = np.sort(exterior[~on_box])
    if porous:
        assert off_box.size > 0
        np.testing.assert_array_equal(np.sort(holes.indices), off_box)
    else:
        assert holes is None and off_box.size == 0
        assert not built  # the facets were not built to find that out
