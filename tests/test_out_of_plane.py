"""Plane strain: the averaged σ33 (written into stress.xdmf) against closed forms.

σ33 = λ tr ε in an isotropic phase (ε33 = 0); for phases of equal ν that is ν (σ11 + σ22)
at every point, so ⟨σ33⟩ = ν (⟨σ11⟩ + ⟨σ22⟩) for any microstructure. A laminate has the
closed form below; a homogeneous power-law cell has no fluctuation, so its ⟨σ33⟩ is the 3D
law's σ33 at ε33 = 0.
"""

import json

from mpi4py import MPI

import meshio
import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.coupling.micro_models import CellModel
from hmm_fenics.coupling.out_of_plane import OutOfPlaneStress
from hmm_fenics.materials import PowerLawElastic
from hmm_fenics.micro.nonlinear import NonlinearCellModel, nonlinear_cell_problem

SOFT, STIFF = hf.IsotropicElastic(3.0, 0.35), hf.IsotropicElastic(70.0, 0.2)
ROUND_OFF = 1e-10  # direct solves on cells of a few hundred dofs


def lame(material):
    return hf.Elasticity(3).lame(material.E, material.nu)


def laminate_sigma33(f, inclusion, matrix, G):
    """⟨σ33⟩ of a layer (fraction f, normal x1) in a matrix, plane strain, Mandel G.

    ε22, ε12 are continuous, σ11 is continuous; ⟨ε11⟩ = G11 fixes σ11.
    """
    phases = [(f, *lame(inclusion)), (1 - f, *lame(matrix))]
    g11, g22 = G[0], G[1]
    compliance = sum(fp / (lp + 2 * mp) for fp, lp, mp in phases)
    coupling = sum(fp * lp / (lp + 2 * mp) for fp, lp, mp in phases)
    s11 = (g11 + g22 * coupling) / compliance
    eps11 = [(s11 - lp * g22) / (lp + 2 * mp) for _, lp, mp in phases]
    return sum(fp * lp * (e + g22) for (fp, lp, _), e in zip(phases, eps11, strict=True))


def test_laminate_row_is_the_closed_form():
    physics = hf.Elasticity(2)
    materials = {"matrix": SOFT, "inclusion": STIFF}
    cell = hf.cell_problem(physics, hf.build_rve(hf.RVESpec("laminate", 2, 0.3, 0.1)), materials)
    row = OutOfPlaneStress(CellModel(cell), materials).row(cell)
    expected = [laminate_sigma33(0.3, STIFF, SOFT, e) for e in np.eye(3)]
    assert expected[2] == 0.0 and abs(expected[0]) > 1.0  # shear gives none; the others do
    np.testing.assert_allclose(row, expected, rtol=ROUND_OFF, atol=ROUND_OFF * max(expected))


def test_equal_poisson_ratio_gives_nu_times_in_plane_trace():
    physics = hf.Elasticity(2)
    nu = 0.3
    materials = {"matrix": hf.IsotropicElastic(3.0, nu), "inclusion": hf.IsotropicElastic(70.0, nu)}
    cell = hf.cell_problem(physics, hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1)), materials)
    model = CellModel(cell)
    G = np.array([[1e-3, -4e-4, 2e-4], [0.0, 1e-3, 0.0], [-2e-3, 5e-4, 7e-4]])
    sigma = model.respond(G, np.zeros((3, 2))).flux
    sigma33 = OutOfPlaneStress(model, materials)(G, np.zeros((3, 2)))
    expected = nu * (sigma[:, 0] + sigma[:, 1])
    np.testing.assert_allclose(sigma33, expected, rtol=ROUND_OFF, atol=0)


def power_law_sigma33(law, G):
    """σ33 of the 3D power law at the plane strain (G11, G22, G12) with ε33 = 0."""
    lmbda, mu = hf.Elasticity(3).lame(law.E, law.nu)
    eps = np.zeros((3, 3))
    eps[0, 0], eps[1, 1] = G[0], G[1]
    eps[0, 1] = eps[1, 0] = G[2] / np.sqrt(2)
    trace = np.trace(eps)
    dev = eps - trace / 3 * np.eye(3)
    secant = mu * (1 + 2 / 3 * np.sum(dev * dev) / law.eps0**2) ** ((law.n - 1) / 2)
    return ((lmbda + 2 * mu / 3) * trace * np.eye(3) + 2 * secant * dev)[2, 2]


def test_homogeneous_power_law_cell_is_the_3d_law():
    law = PowerLawElastic(E=3.0, nu=0.35, eps0=0.01, n=0.3)
    materials = {"matrix": law, "inclusion": law}
    rve = hf.build_rve(hf.RVESpec("laminate", 2, 0.5, 0.25))
    model = NonlinearCellModel(nonlinear_cell_problem(hf.Elasticity(2), rve, materials))
    G = np.array([[0.02, -0.01, 0.005], [0.0, 0.0, 0.03]])  # beyond eps0: nonlinear
    model.respond(G, np.zeros((2, 2)))
    sigma33 = OutOfPlaneStress(model, materials)(G, np.zeros((2, 2)))
    expected = [power_law_sigma33(law, g) for g in G]
    linear = [lame(SOFT)[0] * (g[0] + g[1]) for g in G]
    assert abs(expected[0] - linear[0]) > 0.1 * abs(linear[0])  # the law is far from linear
    np.testing.assert_allclose(sigma33, expected, rtol=1e-8)


RUN = """\
[macro]
geometry = "rectangle"
mesh_size = 0.25
[dirichlet]
left = [0.0, 0.0]
right = [0.01, 0.002]
[rve]
kind = "inclusion"
dim = 2
fraction = 0.3
mesh_size = 0.1
[physics]
kind = "elasticity"
plane = "{plane}"
[materials.matrix]
E = 3.0
nu = 0.3
[materials.inclusion]
E = 70.0
nu = 0.3
[micro]
model = "{model}"
[solver]
schedule = "{schedule}"
[output]
png = false
snapshots = []
"""


@pytest.mark.parametrize(
    ("plane", "model", "schedule"),
    [
        ("strain", "effective", "owner"),
        ("strain", "cell", "owner"),
        ("strain", "cell", "balanced"),  # σ33 computed where the points were
        ("stress", "cell", "owner"),
    ],
)
def test_stress_xdmf_has_the_out_of_plane_stress(tmp_path, plane, model, schedule):
    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    config = folder / "run.toml"
    if MPI.COMM_WORLD.rank == 0:
        config.write_text(RUN.format(plane=plane, model=model, schedule=schedule))
    MPI.COMM_WORLD.barrier()
    assert main(["run", str(config), "-o", str(folder / "out"), "-q"]) == 0
    assert json.loads((folder / "out" / "results.json").read_text())["job"] == "fe2"
    with meshio.xdmf.TimeSeriesReader(str(folder / "out" / "stress.xdmf")) as reader:
        reader.read_points_cells()
        _, _, cell_data = reader.read_data(0)
    sigma = cell_data["stress"][0].reshape(-1, 3, 3)
    in_plane = sigma[:, 0, 0] + sigma[:, 1, 1]
    assert np.abs(in_plane).max() > 0.01  # a loaded part
    # both phases have ν = 0.3: σ33 = ν (σ11 + σ22) in every cell (0 in plane stress)
    expected = 0.3 * in_plane if plane == "strain" else 0.0 * in_plane
    np.testing.assert_allclose(
        sigma[:, 2, 2], expected, rtol=0, atol=ROUND_OFF * np.abs(in_plane).max()
    )


def test_graded_model_rows_per_cell():
    from hmm_fenics.coupling.micro_models import GradedModel

    physics = hf.Elasticity(2)
    materials = {"matrix": SOFT, "inclusion": STIFF}
    model = GradedModel(
        lambda x: hf.RVESpec("laminate", 2, 0.2 if x[0] < 0.5 else 0.4, 0.1), physics, materials
    )
    points = np.array([[0.25, 0.0], [0.75, 0.0], [0.1, 0.0]])
    G = np.array([[1e-3, 2e-4, 0.0], [1e-3, 2e-4, 0.0], [0.0, -1e-3, 5e-4]])
    sigma33 = OutOfPlaneStress(model, materials)(G, points)
    expected = [
        laminate_sigma33(f, STIFF, SOFT, g) for f, g in zip([0.2, 0.4, 0.2], G, strict=True)
    ]
    np.testing.assert_allclose(sigma33, expected, rtol=ROUND_OFF)


def test_von_mises_of_the_picture_uses_sigma33():
    from hmm_fenics.run.pictures import equivalent

    p, s, t = 2.0, 3.0, 0.5
    stresses = np.array(
        [
            np.diag([p, p, p]),  # hydrostatic: none
            np.diag([s, 0.0, 0.0]),  # uniaxial: s
            [[0, t, 0], [t, 0, 0], [0, 0, 0]],  # pure shear: √3 t
        ]
    ).reshape(3, 9)
    np.testing.assert_allclose(
        equivalent(hf.Elasticity(2), stresses), [0.0, s, np.sqrt(3) * t], atol=1e-14
    )
