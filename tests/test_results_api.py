"""Results you can use from Python (issue 15 point 5): the macro solution and flux as
DOLFINx functions and XDMF/VTX files; the summaries of ``hmm-fenics rve`` and ``run``."""

from pathlib import Path

import numpy as np
import pytest
from test_cli import LAMINATE

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.coupling.micro_models import EffectiveModel
from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.solver import solve
from hmm_fenics.summaries import format_run

K = np.diag([2.0, 0.5])  # an anisotropic conductivity with the axes along the slab
L = 3.0


@pytest.fixture(scope="module")
def slab():
    """A 3 × 1 slab, T = 1 on the left and 0 on the right: T = 1 − x/L, q = K∇T exactly."""
    problem = MacroProblem(
        macro_mesh("rectangle", 0.25, params={"L": L, "H": 1.0}),
        hf.Diffusion(2),
        {"left": 1.0, "right": 0.0},
    )
    solve(problem, EffectiveModel(K), progress=False)
    return problem


def shared_tmp(tmp_path):
    from mpi4py import MPI

    return Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))


def test_macro_fields_are_the_solution_and_the_flux(slab):
    fields = hf.macro_fields(slab)
    assert fields.solution.name == "temperature" and fields.flux.name == "flux"
    V = fields.solution.function_space
    n = V.dofmap.index_map.size_local
    x = V.tabulate_dof_coordinates()[:n]
    # P1 reproduces the linear solution exactly: round-off of a solve of O(1) values
    np.testing.assert_allclose(fields.solution.x.array[:n], 1 - x[:, 0] / L, atol=1e-12)
    flux = fields.flux.x.array.reshape(-1, 2)
    np.testing.assert_allclose(flux, np.tile(K @ [-1 / L, 0.0], (len(flux), 1)), atol=1e-12)
    # copies: a later change of the problem does not reach them
    slab.u.x.array[:] += 1.0
    assert np.allclose(fields.solution.x.array[:n], 1 - x[:, 0] / L, atol=1e-12)
    slab.u.x.array[:] -= 1.0


def test_write_fields_xdmf_reads_back(slab, tmp_path):
    from mpi4py import MPI

    import meshio

    folder = shared_tmp(tmp_path)
    written = hf.write_fields(hf.macro_fields(slab), folder / "out", time=1.0)
    assert [p.name for p in written] == ["temperature.xdmf", "flux.xdmf"]
    if MPI.COMM_WORLD.rank != 0:
        return
    with meshio.xdmf.TimeSeriesReader(folder / "out" / "temperature.xdmf") as reader:
        points, _ = reader.read_points_cells()
        t, point_data, _ = reader.read_data(0)
    assert t == 1.0
    np.testing.assert_allclose(point_data["temperature"][:, 0], 1 - points[:, 0] / L, atol=1e-12)
    with meshio.xdmf.TimeSeriesReader(folder / "out" / "flux.xdmf") as reader:
        reader.read_points_cells()
        _, _, cell_data = reader.read_data(0)
    (flux,) = cell_data["flux"]
    np.testing.assert_allclose(flux[:, :2], np.tile(K @ [-1 / L, 0.0], (len(flux), 1)), atol=1e-12)


def test_write_fields_vtx_and_a_bad_kind(slab, tmp_path):
    folder = shared_tmp(tmp_path)
    fields = hf.macro_fields(slab)
    written = hf.write_fields(fields, folder / "bp", kind="vtx")
    assert [p.name for p in written] == ["temperature.bp", "flux.bp"]
    assert all(p.is_dir() and any(p.iterdir()) for p in written)
    with pytest.raises(InputError, match="kind must be one of"):
        hf.write_fields(fields, folder / "x", kind="vtk")


def test_hmm_fenics_rve_prints_a_summary(tmp_path, capsys):
    from mpi4py import MPI

    folder = shared_tmp(tmp_path)
    cell = folder / "cell.toml"
    if MPI.COMM_WORLD.rank == 0:
        cell.write_text(LAMINATE.replace('kind = "laminate"', 'kind = "square-array"\nn = 2')
                        .replace("fraction = 0.5", "fraction = 0.2"))  # fmt: skip
    MPI.COMM_WORLD.barrier()
    assert main(["rve", str(cell), "-o", str(folder / "c.msh")]) == 0
    out = capsys.readouterr().out
    if MPI.COMM_WORLD.rank != 0:
        assert out == ""
        return
    lines = out.splitlines()
    assert lines[0].startswith("square-array RVE (2D), box 1 × 1 (cell units):")
    assert lines[0].endswith(" triangles")
    assert lines[1].split() == ["inclusions", "4"]
    achieved = float(lines[2].split()[2])
    assert lines[2].endswith("achieved by the mesh (target 0.2)")
    assert achieved == pytest.approx(0.2, rel=0.02)  # the generator's fit of the polygons
    shares = {line.split()[0]: float(line.split()[1]) for line in lines[3:]}
    assert shares["inclusion"] == pytest.approx(achieved, abs=5e-5)  # printed to 4 digits
    assert shares["matrix"] + shares["inclusion"] == pytest.approx(1.0, abs=1e-4)


def test_the_run_summary_shows_the_effective_tensor_of_a_linear_cell():
    results = {
        "job": "fe2", "physics": "diffusion", "dim": 2, "macro_points": 6, "macro_cells": 2,
        "ranks": 1, "steps": [{}], "newton_iterations": 1, "energy": 1.0, "reactions": {},
        "timings_table": [], "timings": {}, "micro_bc": "dirichlet",
        "effective_tensor": [[1.5, -1e-18], [-1e-18, 2.25]],
    }  # fmt: skip
    text = format_run(results, Path("out"))
    assert "  apparent (dirichlet BC) conductivity of the cell:" in text
    lines = text.splitlines()
    start = lines.index("  apparent (dirichlet BC) conductivity of the cell:")
    assert lines[start + 1].split() == ["1", "2"]
    assert [line.split() for line in lines[start + 2 : start + 4]] == [
        ["1", "1.50000", "0.00000"],
        ["2", "0.00000", "2.25000"],
    ]
    results.update(effective_tensor=None)
    assert "of the cell" not in format_run(results, Path("out"))
