"""Sampling domains (issue 13, point 2(a), (c) and point 5's 1D checks).

The micro domain at a macro point x is the window x + δ·(−½, ½)^d of a medium: a coefficient
function a(x) (structured windows, a sampled at quadrature points) or the periodic medium of a
generated cell (gmsh windows). Expected values are closed forms (references.md) or an
independent quadrature of ∫ 1/a (scipy.integrate.quad), never this code's output.
"""

import json
import math
import re

from mpi4py import MPI

import numpy as np
import pytest
from scipy.integrate import quad

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.coupling.sampling import (
    CoefficientWindows,
    LatticeWindows,
    SampledModel,
    window_cells,
)
from hmm_fenics.errors import InputError
from hmm_fenics.micro.cell_problem import cell_problem
from hmm_fenics.micro.interval import interval_window
from hmm_fenics.rve.medium import CoefficientMedium, load_function
from hmm_fenics.rve.mesh import build_rve
from hmm_fenics.rve.window import lattice_window

SQRT3 = math.sqrt(3.0)
EPS = 0.1
K1, K2, F = 1.0, 10.0, 0.5  # laminate: matrix k1, layer k2 of fraction f (references.md)
HARMONIC = 1.0 / (F / K2 + (1 - F) / K1)
ARITHMETIC = F * K2 + (1 - F) * K1


def smooth(x, epsilon):
    """a(y) = 2 + cos(2π y1/ε): homogenized diag(√3, 2) (references.md)."""
    return 2.0 + np.cos(2.0 * np.pi * x[0] / epsilon)


def layers(x, epsilon):
    """The laminate: k2 on the first fraction F of every period in x1, k1 elsewhere."""
    return np.where(np.mod(x[0] / epsilon, 1.0) < F, K2, K1)


def window_harmonic_mean(center: float, delta: float) -> float:
    """δ / ∫ 1/a over the window, by adaptive quadrature (independent of the FE code)."""
    integral, _ = quad(
        lambda t: 1.0 / smooth(np.array([t]), EPS),
        center - delta / 2,
        center + delta / 2,
        limit=400,
        epsabs=1e-14,
        epsrel=1e-13,
    )
    return delta / integral


# P2 on 800 elements: the error of the 1D apparent coefficient is O(h⁴) (4.5e-9 relative at
# 400 elements against the quadrature, so ~3e-10 at 800); 1e-8 leaves room and still sees any
# O(h²) slip (2e-6 with P1 at 2000 elements).
TOL_1D = 1e-8


@pytest.mark.parametrize("center, delta", [(0.0, 0.37), (0.123, 0.37), (0.5, 0.25)])
def test_1d_dirichlet_window_is_the_harmonic_mean_over_the_window(center, delta):
    medium = CoefficientMedium(smooth, EPS)
    answer = interval_window(medium, center, delta, 800, bc="dirichlet", degree=2)
    expected = window_harmonic_mean(center, delta)
    assert answer.coefficient == pytest.approx(expected, rel=TOL_1D)
    assert answer.flux_mean == pytest.approx(expected, rel=TOL_1D)  # ⟨a u'⟩ integrated
    # a non-integer window is not the homogenized √3: the resonance error, O(ε/δ)
    assert abs(answer.coefficient - SQRT3) > 1e-3


@pytest.mark.parametrize("periods, center", [(1, 0.0), (3, 0.0417), (4, -0.29)])
def test_1d_periodic_window_of_whole_periods_is_sqrt3(periods, center):
    medium = CoefficientMedium(smooth, EPS)
    answer = interval_window(medium, center, periods * EPS, 250 * periods, "periodic", 2)
    assert answer.coefficient == pytest.approx(SQRT3, rel=TOL_1D)


def test_1d_refuses_a_bad_window():
    medium = CoefficientMedium(smooth, EPS)
    with pytest.raises(InputError, match=r"micro\.bc"):
        interval_window(medium, 0.0, 0.2, 10, bc="neumann-ish")
    with pytest.raises(InputError, match=r"micro\.delta"):
        interval_window(medium, 0.0, -0.2, 10)


def test_2d_laminate_medium_gives_the_laminate_closed_form_exactly():
    # Layers of the structured mesh align with the layer interfaces (4 elements per period,
    # f = 1/2): the exact fluctuation is in the P1 space, so the answer is exact to round-off.
    windows = CoefficientWindows(
        hf.Diffusion(2), layers, 2 * EPS, window_cells(2 * EPS, EPS, 4), hf.Conductivity(1.0),
        epsilon=EPS,
    )  # fmt: skip
    for x in ([0.35, 0.1], [0.0, 0.0]):  # any place: whole periods of a periodic medium
        tensor = windows.cell_at(np.array(x)).effective_tensor
        np.testing.assert_allclose(tensor, np.diag([HARMONIC, ARITHMETIC]), rtol=1e-12, atol=1e-12)


def test_2d_laminate_medium_in_elasticity():
    E, nu = 2.0, 0.3
    windows = CoefficientWindows(
        hf.Elasticity(2), layers, EPS, 4, hf.IsotropicElastic(E, nu), epsilon=EPS
    )
    tensor = windows.cell_at(np.array([0.2, 0.3])).effective_tensor
    # references.md, layers normal to x1, plane strain: C(a) = a C(E, ν) per layer
    phases = [a * hf.Elasticity(2).isotropic_tensor(E, nu) for a in (K2, K1)]
    mean = lambda f: F * f(phases[0]) + (1 - F) * f(phases[1])  # noqa: E731
    c11 = 1 / mean(lambda C: 1 / C[0, 0])
    c12 = mean(lambda C: C[0, 1] / C[0, 0]) * c11
    c22 = (
        mean(lambda C: C[1, 1] - C[0, 1] ** 2 / C[0, 0])
        + mean(lambda C: C[0, 1] / C[0, 0]) ** 2 * c11
    )
    c66 = 1 / mean(lambda C: 1 / C[2, 2])  # Mandel: C[2, 2] = 2 C1212
    expected = np.array([[c11, c12, 0], [c12, c22, 0], [0, 0, c66]])
    np.testing.assert_allclose(tensor, expected, rtol=1e-11, atol=1e-11)


def test_2d_smooth_medium_gives_diag_sqrt3_2():
    windows = CoefficientWindows(
        hf.Diffusion(2), smooth, 2 * EPS, window_cells(2 * EPS, EPS, 24), hf.Conductivity(1.0),
        degree=2, epsilon=EPS,
    )  # fmt: skip
    tensor = windows.cell_at(np.array([0.31, -0.2])).effective_tensor
    # P2 at h = ε/24: the error is O(h⁴), measured 1.9e-6 relative across the layers; along
    # them the mean of a is integrated exactly by the degree-6 rule (round-off).
    np.testing.assert_allclose(tensor, np.diag([SQRT3, 2.0]), rtol=1e-5, atol=1e-10)


def window_mean(center: float, delta: float) -> float:
    """The mean of a = 2 + cos(2π y1/ε) over the window, in closed form."""
    lo, hi = (2 * np.pi * (center + s * delta / 2) / EPS for s in (-1, 1))
    return 2.0 + EPS / (2 * np.pi * delta) * (math.sin(hi) - math.sin(lo))


def test_non_integer_windows_under_dirichlet_and_neumann_give_the_window_means():
    """δ = 1.5ε: Dirichlet along the layers is the window's arithmetic mean of a (w = 0 is the
    exact solution), Neumann across them its harmonic mean (the flux is constant), neither √3
    nor 2: the resonance error of a window that is not a whole number of periods."""
    x, delta = np.array([0.31, -0.2]), 1.5 * EPS
    cells = window_cells(delta, EPS, 24)
    tensors = {
        bc: CoefficientWindows(
            hf.Diffusion(2), smooth, delta, cells, hf.Conductivity(1.0), degree=2, epsilon=EPS,
            bc=bc,
        ).cell_at(x).effective_tensor
        for bc in ("dirichlet", "neumann")
    }  # fmt: skip
    # along: the degree-6 rule integrates a's mean to ~1e-10; across: P2 at h = ε/24, O(h⁴)
    # (1.9e-6 relative measured above), so 1e-5
    assert tensors["dirichlet"][1, 1] == pytest.approx(window_mean(x[0], delta), rel=1e-9)
    harmonic = window_harmonic_mean(x[0], delta)
    assert tensors["neumann"][0, 0] == pytest.approx(harmonic, rel=1e-5)
    assert abs(harmonic - SQRT3) > 1e-2 and abs(window_mean(x[0], delta) - 2.0) > 1e-2


def test_windows_refuse_oversampling():
    with pytest.raises(InputError, match=r"micro\.bc"):
        CoefficientWindows(
            hf.Diffusion(2), smooth, EPS, 8, hf.Conductivity(1.0), epsilon=EPS, bc="oversampling"
        )


def test_windows_start_at_the_medium_phase_of_x():
    """Whole periods: every x sees the same tensor; 1.5 periods: the tensor depends on x."""
    material = hf.Conductivity(1.0)
    whole = CoefficientWindows(hf.Diffusion(2), smooth, EPS, 16, material, epsilon=EPS)
    part = CoefficientWindows(hf.Diffusion(2), smooth, 1.5 * EPS, 24, material, epsilon=EPS)
    a, b = np.array([0.0, 0.0]), np.array([0.0123, 0.0])  # not a multiple of h
    same = whole.cell_at(a).effective_tensor - whole.cell_at(b).effective_tensor
    # one period on a shifted mesh: only the sample points move, and the discrete sums of the
    # cosine over whole periods do not depend on the shift (measured 4e-11)
    assert np.abs(same).max() < 1e-8
    moved = part.cell_at(a).effective_tensor[0, 0] - part.cell_at(b).effective_tensor[0, 0]
    # the harmonic means over the two windows differ by 0.0402 (scipy); P1 at h = ε/16 makes
    # each tensor 4e-3 too high but nearly alike (measured difference 0.04005: 4e-3 relative)
    expected = window_harmonic_mean(0.0, 0.15) - window_harmonic_mean(0.0123, 0.15)
    assert moved == pytest.approx(expected, rel=1e-2)
    assert abs(expected) > 0.02


def scaled(x, scale=2.0):
    return np.full(x.shape[1], scale)


def by_name(x, scale=2.0, eps=1.0):
    return np.full(x.shape[1], scale + eps)


def test_a_defaulted_second_parameter_keeps_its_default_and_eps_goes_by_name():
    x = np.zeros((2, 3))
    # ε = 0.05 must not land in `scale` (the function would then return 0.05)
    assert CoefficientMedium(scaled, 0.05).values(x.T) == pytest.approx([2.0] * 3, abs=0)
    assert CoefficientMedium(scaled).values(x.T) == pytest.approx([2.0] * 3, abs=0)
    # a parameter named eps gets ε by keyword (2 + 0.05), its default without a period
    assert CoefficientMedium(by_name, 0.05).values(x.T) == pytest.approx([2.05] * 3, abs=0)
    assert CoefficientMedium(by_name).values(x.T) == pytest.approx([3.0] * 3, abs=0)
    # a second parameter without a default is ε, positionally
    assert CoefficientMedium(smooth, 0.05).values(x.T) == pytest.approx([3.0] * 3, abs=0)
    with pytest.raises(InputError, match=r"micro\.epsilon"):
        CoefficientMedium(smooth)


def test_sampled_model_answers_each_point_with_its_own_window():
    medium = CoefficientMedium(lambda x: 1.0 + x[1] ** 2)  # smooth, not periodic
    windows = CoefficientWindows(hf.Diffusion(2), medium, 0.05, 4, hf.Conductivity(2.0))
    model = SampledModel(windows)
    points = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    G = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    response = model.respond(G, points)
    assert model.solves == 2  # the third point is the first again
    # a window this small sees a(x) ≈ 1 + x2² (+ δ²/12 of its curvature): k = 2 a
    for i, (x, g) in enumerate(zip(points, G, strict=True)):
        k = 2.0 * (1.0 + x[1] ** 2 + 0.05**2 / 12)
        np.testing.assert_allclose(response.flux[i], k * g, rtol=1e-3, atol=1e-12)
        np.testing.assert_allclose(response.tangent[i], np.diag([k, k]), rtol=1e-3, atol=1e-12)


def test_plane_strain_sigma33_of_a_homogeneous_medium():
    E, nu, scale = 3.0, 0.25, 2.0
    windows = CoefficientWindows(
        hf.Elasticity(2), lambda x: np.full(x.shape[1], scale), 0.1, 3, hf.IsotropicElastic(E, nu)
    )
    model = SampledModel(windows)
    G = np.array([[1e-3, 2e-3, 5e-4], [-1e-3, 0.0, 1e-3]])
    response = model.respond(G, np.array([[0.0, 0.0], [1.0, 2.0]]))
    lmbda, mu = scale * E * nu / ((1 + nu) * (1 - 2 * nu)), scale * E / (2 * (1 + nu))
    # plane strain, homogeneous: σ = λ tr ε I + 2 μ ε with ε = G, σ33 = λ (G11 + G22)
    C = np.array([[lmbda + 2 * mu, lmbda, 0], [lmbda, lmbda + 2 * mu, 0], [0, 0, 2 * mu]])
    np.testing.assert_allclose(response.flux, G @ C.T, rtol=1e-12)
    sigma33 = model.averages()["sigma33"]
    np.testing.assert_allclose(sigma33, lmbda * (G[:, 0] + G[:, 1]), rtol=1e-12)


def test_3d_coefficient_window_of_a_laminate():
    windows = CoefficientWindows(hf.Diffusion(3), layers, EPS, 4, hf.Conductivity(1.0), epsilon=EPS)
    tensor = windows.cell_at(np.array([0.0, 0.1, 0.2])).effective_tensor
    expected = np.diag([HARMONIC, ARITHMETIC, ARITHMETIC])
    np.testing.assert_allclose(tensor, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- windows of generated cells

DISKS = hf.RVESpec("inclusion", 2, 0.3, 0.05)
CONDUCTIVITIES = {"matrix": hf.Conductivity(K1), "inclusion": hf.Conductivity(K2)}


def window_tensor(origin, size, spec=DISKS):
    rve = lattice_window(spec, np.asarray(origin, float), np.asarray(size, float))
    return cell_problem(hf.Diffusion(spec.dim), rve, CONDUCTIVITIES).effective_tensor, rve


def test_window_of_2x2_periods_equals_the_one_period_cell():
    one, rve1 = window_tensor([0.0, 0.0], [1.0, 1.0])
    four, rve4 = window_tensor([0.3, 0.1], [2.0, 2.0])  # 2×2 periods, shifted phase
    assert rve4.fraction == pytest.approx(rve1.fraction, rel=2e-3)  # same polygons, re-meshed
    # Two unstructured meshes of one periodic medium at h = 0.05: P1 discretization errors
    # of ~1e-3 (the generated cell at h/2 moves C by 1.5e-3); the two differ by 4e-5.
    np.testing.assert_allclose(four, one, rtol=1e-3, atol=1e-3)
    # the generator's cell (curved inclusion enlarged to hit f exactly, refined interface):
    # the window's fraction is 0.4% short, dC/df ≈ 2.3 k1 → 0.3% lower C
    cell = cell_problem(hf.Diffusion(2), build_rve(DISKS), CONDUCTIVITIES).effective_tensor
    np.testing.assert_allclose(one, cell, rtol=5e-3, atol=5e-3)


def test_non_integer_window_is_periodic_as_a_mesh_and_shows_resonance():
    tensor, rve = window_tensor([0.2, 0.45], [1.5, 1.5])  # cut inclusions on the faces
    one, _ = window_tensor([0.0, 0.0], [1.0, 1.0])
    # the mesh passed the node-for-node periodicity check (build_rve); the window holds a
    # different fraction than the medium, and its tensor is off: the resonance error
    assert abs(rve.fraction - 0.3) > 0.01
    assert np.abs(tensor - one).max() > 1e-2
    assert np.all(np.linalg.eigvalsh(tensor) > 0)


def test_lattice_windows_move_with_x_and_refuse_3d_fractional_windows():
    windows = LatticeWindows(hf.Diffusion(2), DISKS, CONDUCTIVITIES, delta=2.0, epsilon=1.0)
    t0 = windows.cell_at(np.array([0.0, 0.0])).effective_tensor
    t1 = windows.cell_at(np.array([0.37, 0.61])).effective_tensor
    np.testing.assert_allclose(t1, t0, rtol=1e-3, atol=1e-3)  # whole periods, as above
    spheres = hf.RVESpec("inclusion", 3, 0.2, 0.25)
    with pytest.raises(InputError, match=r"micro\.delta.*whole periods"):
        lattice_window(spheres, np.zeros(3), np.full(3, 1.5))
    with pytest.raises(InputError, match=r"micro\.medium"):
        lattice_window(hf.RVESpec("fibers", 3, 0.3, 0.25), np.zeros(3), np.ones(3))


def test_3d_laminate_window_of_a_non_integer_number_of_periods():
    spec = hf.RVESpec("laminate", 3, F, 0.25)
    origin = np.array([0.3, 0.1, 0.2])
    rve = lattice_window(spec, origin, np.full(3, 1.5))
    tensor = cell_problem(hf.Diffusion(3), rve, CONDUCTIVITIES).effective_tensor
    f = layer_fraction(0.3, 1.8)  # the window's own fraction: the laminate of it, exactly
    harmonic, arithmetic = 1 / (f / K2 + (1 - f) / K1), f * K2 + (1 - f) * K1
    expected = np.diag([harmonic, arithmetic, arithmetic])
    np.testing.assert_allclose(tensor, expected, rtol=1e-11, atol=1e-11)


def layer_fraction(a: float, b: float) -> float:
    """Fraction of [a, b] in the laminate cell's layers [0.25 + k, 0.75 + k] (f = 1/2, L = 1)."""
    covered = sum(
        max(0.0, min(b, 0.75 + k) - max(a, 0.25 + k))
        for k in range(math.floor(a) - 1, math.ceil(b) + 1)
    )
    return covered / (b - a)


@pytest.mark.parametrize("x", [0.0, 0.1, 0.37])
def test_non_integer_laminate_window_is_the_laminate_of_its_own_fractions(x):
    """Resonance in closed form: a window of 1.5 periods at x holds its own layer fraction f(x).

    Periodic conditions on a window whose layers are normal to x1 give the laminate of the
    window's fractions exactly (the gmsh mesh conforms to the layers): harmonic across,
    arithmetic along, with f(x) ≠ 1/2.
    """
    spec = hf.RVESpec("laminate", 2, F, 0.25)
    windows = LatticeWindows(hf.Diffusion(2), spec, CONDUCTIVITIES, delta=0.15, epsilon=EPS)
    tensor = windows.cell_at(np.array([x, 0.3])).effective_tensor
    f = layer_fraction((x - 0.075) / EPS, (x + 0.075) / EPS)
    expected = np.diag([1 / (f / K2 + (1 - f) / K1), f * K2 + (1 - f) * K1])
    np.testing.assert_allclose(tensor, expected, rtol=1e-11, atol=1e-11)


# ---------------------------------------------------------------- run files and FE²

MEDIUM_PY = """\
import numpy as np

def layered(x, epsilon):
    # 2 + cos(2π x1/ε) scaled by 1 + x2: A11 = (1 + x2) √3 for a window of whole periods
    return (1.0 + x[1]) * (2.0 + np.cos(2.0 * np.pi * x[0] / epsilon))

def wrong_shape(x):
    return np.ones((2, x.shape[1]))

def negative(x):
    return -np.ones(x.shape[1])

def not_finite(x):
    return np.full(x.shape[1], np.nan)

def raises(x):
    raise RuntimeError("boom")

CONSTANT = 3.0
"""

RUN = """\
[macro]
geometry = "rectangle"
mesh_size = 0.5
quadrature_degree = 1

[dirichlet]
left = 0.0
right = 1.0

[rve]
dim = 2

[physics]
kind = "diffusion"
degree = 2

[materials.matrix]
k = 1.0

[micro]
medium = "medium.py:layered"
epsilon = 0.05
delta = 0.1
cells_per_epsilon = 12

[output]
fields = "none"
png = false
snapshots = []
"""


@pytest.fixture
def folder(tmp_path):
    """One folder for all ranks (rank 0's tmp_path), with the medium module."""
    comm = MPI.COMM_WORLD
    path = comm.bcast(tmp_path, root=0)
    if comm.rank == 0:
        (path / "medium.py").write_text(MEDIUM_PY)
    comm.barrier()
    return path


def run(folder, text, out="out"):
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        (folder / "run.toml").write_text(text)
    comm.barrier()
    code = main(["run", str(folder / "run.toml"), "-o", str(folder / out), "-q"])
    results = folder / out / "results.json"
    return code, json.loads(results.read_text()) if code == 0 and results.exists() else None


def test_fe2_with_a_callable_medium_matches_the_homogenized_solution(folder):
    code, data = run(folder, RUN)
    assert code == 0
    # The window of whole periods at x has A11 = (1 + x2) √3 exactly (u = y1 + w(y1) with
    # the 1D corrector; the window mean of 1 + y2 is 1 + x2), A12 = 0. Then u = x1 solves the
    # macro problem (∂1 A11 = 0, no flux through top/bottom), reproduced by the macro P1
    # exactly, and the flux (1 + x2) √3 e1 averages to 1.5 √3 over the unit square. The
    # The macro midpoint rule is exact for the flux, linear in x2; the micro P2 windows carry
    # an O(h⁴) error: measured 1.4e-4 relative at h = ε/8 and 2.8e-5 at ε/12 (used here),
    # their ratio (3/2)⁴ = 5.1 as O(h⁴) says. 1e-4 leaves room; the mean of a would be 3.0.
    np.testing.assert_allclose(data["mean_flux"], [1.5 * SQRT3, 0.0], rtol=1e-4, atol=1e-4)
    assert data["mean_flux"][0] != pytest.approx(1.5 * 2.0, rel=0.1)  # not the mean of a
    assert data["input"]["config"]["micro"]["medium"] == "medium.py:layered"


def test_fe2_with_windows_of_a_generated_cell(folder):
    laminate = '[rve]\nkind = "laminate"\ndim = 2\nfraction = 0.5\nmesh_size = 0.2'
    text = RUN.replace("[rve]\ndim = 2", laminate)
    text = text.replace('"medium.py:layered"', '"rve"').replace("cells_per_epsilon = 12\n", "")
    text = text.replace("delta = 0.1", "delta = 0.05").replace("degree = 2", "degree = 1")
    code, data = run(folder, text.replace("k = 1.0", "k = 1.0\n[materials.inclusion]\nk = 10.0"))
    assert code == 0
    # windows of one period at every x: the laminate's harmonic mean across, u = x1 exact
    np.testing.assert_allclose(data["mean_flux"], [HARMONIC, 0.0], rtol=1e-11, atol=1e-11)


BAD = {
    "delta": ("delta = 0.1", "delta = -0.1", r"micro\.delta must be a positive length"),
    "epsilon": ("epsilon = 0.05", "epsilon = 0.0", r"micro\.epsilon must be a positive length"),
    "cells": ("cells_per_epsilon = 12", "cells_per_epsilon = 0", r"micro\.cells_per_epsilon"),
    "no file": ('"medium.py:layered"', '"nowhere.py:layered"', r"micro\.medium: cannot import"),
    "no function": ('"medium.py:layered"', '"medium.py:missing"', r"micro\.medium: .*no attribute"),
    "not callable": ('"medium.py:layered"', '"medium.py:CONSTANT"', r"micro\.medium: .*not callable"),
    "malformed": ('"medium.py:layered"', '"medium.py"', r"micro\.medium must be 'module:function'"),
    "shape": ('"medium.py:layered"', '"medium.py:wrong_shape"', r"micro\.medium must return one value"),
    "negative": ('"medium.py:layered"', '"medium.py:negative"', r"micro\.medium must be finite and positive"),
    "nan": ('"medium.py:layered"', '"medium.py:not_finite"', r"micro\.medium must be finite and positive"),
    "raises": ('"medium.py:layered"', '"medium.py:raises"', r"micro\.medium raised RuntimeError"),
    "rve keys": ("dim = 2", 'dim = 2\nkind = "laminate"', r"\[rve\] table holds dim only"),
    "two phases": ("k = 1.0", "k = 1.0\n[materials.inclusion]\nk = 2.0", r"matrix only"),
    "no epsilon": ("epsilon = 0.05\n", "", r"micro\.epsilon is missing"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_medium_keys_exit_2_naming_the_key(folder, capsys, case):
    old, new, message = BAD[case]
    assert old in RUN
    code, _ = run(folder, RUN.replace(old, new, 1))
    assert code == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert re.search(message, err), err


def test_medium_keys_without_a_medium(folder, capsys):
    text = RUN.replace("[rve]\ndim = 2", '[rve]\nkind = "laminate"\ndim = 2\nmesh_size = 0.1')
    text = text.replace('medium = "medium.py:layered"\n', "").replace("degree = 2", "")
    code, _ = run(folder, text.replace("k = 1.0", "k = 1.0\n[materials.inclusion]\nk = 2.0"))
    assert code == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert "need micro.medium" in err, err


@pytest.mark.parametrize(
    "command", [["homogenize"], ["rve", "-o", "cell.msh"], ["rve-size", "--tol", "0.5"]]
)
def test_cell_commands_refuse_a_run_file_with_a_function_medium(folder, capsys, command):
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        (folder / "run.toml").write_text(RUN)
    comm.barrier()
    argv = [command[0], str(folder / "run.toml"), *command[1:]]
    if command[0] == "rve":
        argv[-1] = str(folder / f"cell{comm.rank}.msh")
    assert main(argv) == 2
    err = capsys.readouterr().err
    if comm.rank == 0:  # the command line reports on rank 0
        # not "rve.path: mesh file 'medium.py:layered' does not exist": the key and the way out
        assert "micro.medium" in err and "hmm-fenics run" in err, err
        assert "rve.path" not in err, err


def test_medium_warns_when_delta_is_not_small_against_h(folder, caplog):
    text = RUN.replace("delta = 0.1", "delta = 0.75").replace("degree = 2", "degree = 1")
    assert "cells_per_epsilon = 12" in text
    code, _ = run(folder, text.replace("cells_per_epsilon = 12", "cells_per_epsilon = 1"))
    assert code == 0
    if MPI.COMM_WORLD.rank == 0:
        assert "HMM assumes δ ≪ H" in caplog.text


def test_load_function_from_the_run_folder(folder):
    function = load_function("medium.py:layered", folder)
    values = function(np.array([[0.0, 0.03], [1.0, 1.0]]), 0.05)
    np.testing.assert_allclose(values, [2.0 * 3.0, 2.0 * (2.0 + np.cos(1.2 * np.pi))])
