"""Micro snapshots of history cells: fields at the micro quadrature points and their files.

References: the cell's own macro answer of the step (⟨σ⟩, ⟨σ33⟩ and the averaged internal
variables returned by ``solve``), cell volumes computed from the mesh vertices (here and by
meshio from the files), the von Mises formula written in components, and the phases (an
elastic phase has no plastic strain).
"""

import math

import meshio
import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.point_laws import IN_PLANE, Elastic, J2Plasticity, Maxwell
from hmm_fenics.run.fields import mandel_tensors, write_history_snapshot
from hmm_fenics.rve.checks import cell_volumes

GLASS = (70.0, 0.2)
MATRIX = (3.0, 0.35, 0.02, 0.3, 0.2)  # E, nu, sigma_y, H_iso, H_kin
ROUND_OFF = 1e-12  # relative: sums over a few thousand quadrature points


@pytest.fixture(scope="module")
def plastic_state():
    """A 2D inclusion cell (J2 matrix, elastic glass) after a load step and a reverse step."""
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))
    cell = history_cell_problem(
        hf.Elasticity(2), rve, {"matrix": J2Plasticity(*MATRIX), "inclusion": Elastic(*GLASS)}
    )
    G0 = np.array([0.03, -0.01, 0.02])
    first = cell.solve(G0, np.zeros(cell.width_internal), np.zeros(3))
    G = np.array([-0.01, 0.02, 0.005])
    solution = cell.solve(G, first.internal_row, G0)
    assert solution.plastic_strain > 1e-3
    return cell, G, solution


def volume_average(cell, per_cell):
    """Σ |cell| value / |Y| with the cell volumes from the vertices (local cell order)."""
    return cell_volumes(cell.rve.mesh) @ per_cell / cell.rve.volume


def test_cell_stress_averages_to_the_macro_stress(plastic_state):
    cell, G, solution = plastic_state
    fields = cell.micro_fields(G, solution.fluctuation, solution.internal_row)
    assert fields.stress.shape == (cell.n_points_q, 6)
    mean = volume_average(cell, cell.cell_values(fields.stress))
    scale = np.abs(solution.flux).max()
    np.testing.assert_allclose(mean[IN_PLANE], solution.flux, rtol=0, atol=ROUND_OFF * scale)
    np.testing.assert_allclose(mean[2], solution.sigma33, rtol=0, atol=ROUND_OFF * scale)
    np.testing.assert_allclose(mean[[3, 4]], 0.0, atol=ROUND_OFF * scale)  # plane strain
    # the averaged internal variables of the step, cell by cell
    for name in ("plastic_strain", "dissipation", "stored_energy"):
        value = volume_average(cell, cell.cell_values(getattr(fields, name)))
        assert value == pytest.approx(getattr(solution, name), rel=ROUND_OFF)


def test_plastic_strain_lives_in_the_plastic_phase_only(plastic_state):
    cell, G, solution = plastic_state
    fields = cell.micro_fields(G, solution.fluctuation, solution.internal_row)
    glass, matrix = cell.phase_points["inclusion"], cell.phase_points["matrix"]
    assert np.array_equal(fields.plastic_strain[glass], np.zeros(glass.stop - glass.start))
    assert np.array_equal(fields.dissipation[glass], np.zeros(glass.stop - glass.start))
    assert fields.plastic_strain[matrix].max() > 1e-3 and fields.dissipation[matrix].max() > 0
    s = fields.stress
    von_mises = np.sqrt(
        0.5 * ((s[:, 0] - s[:, 1]) ** 2 + (s[:, 1] - s[:, 2]) ** 2 + (s[:, 2] - s[:, 0]) ** 2)
        + 1.5 * (s[:, 3] ** 2 + s[:, 4] ** 2 + s[:, 5] ** 2)  # 3 τ², τ = Mandel / √2
    )
    np.testing.assert_allclose(fields.von_mises, von_mises, rtol=1e-12, atol=1e-14)
    # on the yield surface where the matrix yielded in this step: σ_vM ≥ σ_y (+ hardening)
    sigma_y = MATRIX[2]
    assert fields.von_mises[matrix].max() > sigma_y


def test_mandel_vectors_become_symmetric_tensors():
    r = np.sqrt(2.0)
    mandel = np.array([[1.0, 2.0, 3.0, 4.0 * r, 5.0 * r, 6.0 * r]])
    expected = [[1.0, 6.0, 5.0], [6.0, 2.0, 4.0], [5.0, 4.0, 3.0]]
    np.testing.assert_allclose(mandel_tensors(mandel).reshape(3, 3), expected, rtol=1e-15)


def test_maxwell_cell_stress_averages_to_the_macro_stress(tmp_path):
    rve = hf.build_rve(hf.RVESpec("inclusion", 3, 0.1, 0.3))
    law = Maxwell(2.0, 0.3, ((1.5, 0.5), (0.7, 4.0)))
    cell = history_cell_problem(
        hf.Elasticity(3), rve, {"matrix": law, "inclusion": Elastic(*GLASS)}
    )
    G = 0.01 * np.array([1.0, -0.3, 0.2, 0.1, 0.0, 0.4])
    s = cell.solve(G, np.zeros(cell.width_internal), np.zeros(6), 0.2)
    s = cell.solve(G, s.internal_row, G, 0.5)  # held: the branches relax
    fields = cell.micro_fields(G, s.fluctuation, s.internal_row)
    mean = volume_average(cell, cell.cell_values(fields.stress))
    np.testing.assert_allclose(mean, s.flux, rtol=0, atol=ROUND_OFF * np.abs(s.flux).max())
    assert not fields.plastic_strain.any() and fields.dissipation.max() > 0
    snapshot = write_history_snapshot(
        tmp_path / "cube", hf.Elasticity(3), cell, G, s.fluctuation, s.internal_row
    )
    r = np.sqrt(2.0)
    f = s.flux
    macro = [[f[0], f[5] / r, f[4] / r], [f[5] / r, f[1], f[3] / r], [f[4] / r, f[3] / r, f[2]]]
    np.testing.assert_allclose(snapshot.mean_flux, macro, rtol=0, atol=ROUND_OFF * np.abs(f).max())


def meshio_volumes(points, cells):
    """Simplex volumes from the vertices meshio read (independent of the DOLFINx mesh)."""
    (block,) = cells
    x = points[block.data][:, :, : block.data.shape[1] - 1]
    edges = x[:, 1:] - x[:, :1]
    return np.abs(np.linalg.det(edges)) / math.factorial(edges.shape[1])


def test_history_snapshot_files_read_back(plastic_state, tmp_path):
    from mpi4py import MPI

    from dolfinx import io

    cell, G, solution = plastic_state
    snapshot = write_history_snapshot(
        tmp_path / "rve_0",
        hf.Elasticity(2),
        cell,
        G,
        solution.fluctuation,
        solution.internal_row,
    )
    names = {"total", "fluctuation", "stress", "plastic_strain", "dissipation", "phase"}
    assert names <= set(snapshot.files)
    mean = np.asarray(snapshot.mean_flux)
    s = solution.flux / np.array([1.0, 1.0, np.sqrt(2.0)])
    macro = np.array([[s[0], s[2], 0.0], [s[2], s[1], 0.0], [0.0, 0.0, solution.sigma33]])
    np.testing.assert_allclose(mean, macro, rtol=0, atol=ROUND_OFF * np.abs(macro).max())

    with io.XDMFFile(MPI.COMM_SELF, str(tmp_path / snapshot.files["stress"]), "r") as xdmf:
        mesh = xdmf.read_mesh()
    assert mesh.topology.index_map(2).size_local == len(cell.point_cells)
    data = {}
    for name in names:
        with meshio.xdmf.TimeSeriesReader(str(tmp_path / snapshot.files[name])) as reader:
            points, cells = reader.read_points_cells()
            _, point_data, cell_data = reader.read_data(0)
        data.update(point_data)
        data.update({key: value[0] for key, value in cell_data.items()})
    volumes = meshio_volumes(points, cells)
    assert volumes.sum() == pytest.approx(cell.rve.volume, rel=1e-12)
    stress = data["stress"].reshape(-1, 3, 3)
    from_file = np.einsum("c,cij->ij", volumes, stress) / volumes.sum()
    np.testing.assert_allclose(from_file, macro, rtol=0, atol=1e-10 * np.abs(macro).max())
    phase = data["phase"].ravel()
    glass = phase == cell.rve.phases["inclusion"]
    assert glass.any() and not data["plastic_strain"][glass].any()
    assert data["plastic_strain"].max() > 1e-3 and data["dissipation"].max() > 0
    # total = G·y + fluctuation at the nodes (periodic part read back separately)
    u, w = data["total"][:, :2], data["fluctuation"][:, :2]
    y = points[:, :2] - cell.rve.lower
    e12 = G[2] / np.sqrt(2.0)  # the symmetric affine part E y, E from the Mandel G
    affine = np.column_stack([G[0] * y[:, 0] + e12 * y[:, 1], e12 * y[:, 0] + G[1] * y[:, 1]])
    np.testing.assert_allclose(u - w, affine, atol=1e-14)
