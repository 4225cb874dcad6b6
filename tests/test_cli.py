"""The command line: end to end, and one clear error (exit code 2) for each kind of bad input."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import cli_error

from hmm_fenics.cli import main
from hmm_fenics.rve.mesh import write_msh
from hmm_fenics.rve.spec import RVESpec

LAMINATE = """\
[rve]
kind = "laminate"
dim = 2
fraction = 0.5
mesh_size = 0.1
[physics]
kind = "diffusion"
[materials.matrix]
k = 1.0
[materials.inclusion]
k = 10.0
"""

ELASTIC = """\
[rve]
kind = "inclusion"
dim = {dim}
fraction = 0.2
mesh_size = {h}
[physics]
kind = "elasticity"
[materials.matrix]
E = 3.0
nu = 0.35
[materials.inclusion]
E = 70.0
nu = 0.2
"""


def write(tmp_path, text, name="cell.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.serial
def test_cli_end_to_end_writes_the_json(tmp_path):
    cell = write(tmp_path, LAMINATE)
    out = tmp_path / "out" / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "hmm_fenics.cli", "homogenize", str(cell), "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Effective conductivity" in proc.stdout
    data = json.loads(out.read_text())
    for key in (
        "tensor",
        "notation",
        "physics",
        "dim",
        "dofs",
        "fraction",
        "hill_mandel_residual",
        "timings",
    ):
        assert key in data
    np.testing.assert_allclose(data["tensor"], np.diag([1 / (0.5 / 10 + 0.5), 5.5]), atol=1e-12)
    assert data["physics"] == "diffusion" and data["dim"] == 2
    assert abs(data["fraction"] - 0.5) < 1e-12
    assert data["hill_mandel_residual"] < 1e-10
    assert set(data["timings"]) >= {"mesh", "assemble", "factor", "solve", "total"}
    # the file is not overwritten without asking
    again = subprocess.run(
        [sys.executable, "-m", "hmm_fenics.cli", "homogenize", str(cell), "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    )


@pytest.mark.serial
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path):
    cell = write(tmp_path, LAMINATE.replace('kind = "laminate"', 'kind = "honeycomb"'))
    proc = subprocess.run(
        [sys.executable, "-m", "hmm_fenics.cli", "homogenize", str(cell)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "rve.kind must be one of" in proc.stderr


@pytest.mark.parametrize("dim", [2, 3])
def test_cli_elasticity_in_process(tmp_path, capsys, dim):
    from mpi4py import MPI

    cell = write(tmp_path, ELASTIC.format(dim=dim, h=0.1 if dim == 2 else 0.25))
    shared = MPI.COMM_WORLD.bcast(tmp_path, root=0) / "r.json"  # rank 0 writes it
    assert main(["homogenize", str(cell), "--json", str(shared)]) == 0
    data = json.loads(shared.read_text())
    assert np.shape(data["tensor"]) == ((3, 3) if dim == 2 else (6, 6))
    assert "Mandel" in data["notation"]


BAD = {
    "unknown rve kind": (LAMINATE.replace('"laminate"', '"honeycomb"'), "rve.kind must be one of"),
    "unknown physics kind": (
        LAMINATE.replace('kind = "diffusion"', 'kind = "plasticity"'),
        "physics.kind must be",
    ),
    "unknown key": (
        LAMINATE.replace("mesh_size = 0.1", "mesh_size = 0.1\nradius = 0.3"),
        r"unknown key\(s\) \['rve.radius'\]",
    ),
    # a table neither file kind has ([output] would make it a run file: homogenize takes those)
    "unknown table": (LAMINATE + "[outputs]\nx = 1\n", r"unknown key\(s\) \['outputs'\]"),
    "missing table": (
        LAMINATE.split("[physics]")[0],
        r"missing key\(s\) \['materials', 'physics'\]",
    ),
    "fraction 0": (
        LAMINATE.replace("fraction = 0.5", "fraction = 0.0"),
        "rve.fraction must lie strictly between 0 and 1",
    ),
    "fraction > 1": (
        LAMINATE.replace("fraction = 0.5", "fraction = 1.2"),
        "rve.fraction must lie strictly between 0 and 1",
    ),
    "disk wider than cell": (
        LAMINATE.replace('"laminate"', '"inclusion"').replace("fraction = 0.5", "fraction = 0.8"),
        r"disk would span \(1.0093, 1.0093\).*touch at fraction 0.7854",
    ),
    "sphere wider than cell": (
        ELASTIC.format(dim=3, h=0.1).replace("fraction = 0.2", "fraction = 0.55"),
        r"sphere would span.*touch at fraction 0.5236",
    ),
    "mesh_size 0": (
        LAMINATE.replace("mesh_size = 0.1", "mesh_size = 0.0"),
        "rve.mesh_size must be positive",
    ),
    "mesh_size negative": (
        LAMINATE.replace("mesh_size = 0.1", "mesh_size = -0.1"),
        "rve.mesh_size must be positive",
    ),
    "mesh_size absurd": (
        LAMINATE.replace("mesh_size = 0.1", "mesh_size = 1e-4"),
        r"would give about 2.3e\+08 cells",
    ),
    "mesh_size as string": (
        LAMINATE.replace("mesh_size = 0.1", 'mesh_size = "fine"'),
        "rve.mesh_size must be a number",
    ),
    "E zero": (
        ELASTIC.format(dim=2, h=0.1).replace("E = 3.0", "E = 0.0"),
        r"materials.matrix.E = 0.0 is out of range: expected a Young's modulus > 0",
    ),
    "nu 0.5 2D": (
        ELASTIC.format(dim=2, h=0.1).replace("nu = 0.2", "nu = 0.5"),
        r"materials.inclusion.nu = 0.5 is out of range: expected a Poisson's ratio in \(-1, 0.5\)",
    ),
    "nu -1 3D": (
        ELASTIC.format(dim=3, h=0.1).replace("nu = 0.35", "nu = -1.0"),
        r"materials.matrix.nu = -1.0 is out of range: expected a Poisson's ratio in \(-1, 0.5\)",
    ),
    "k negative": (
        LAMINATE.replace("k = 10.0", "k = -10.0"),
        "materials.inclusion.k = -10.0 is out of range: expected a conductivity > 0",
    ),
    "k for elasticity": (
        ELASTIC.format(dim=2, h=0.1).replace("E = 70.0\nnu = 0.2", "k = 3.0"),
        r"materials.inclusion: unknown key\(s\) \['k'\]",
    ),
    "phase without material": (
        LAMINATE.split("[materials.inclusion]")[0],
        r"phase\(s\) \['inclusion'\] have no material",
    ),
    "material for no phase": (
        LAMINATE + "[materials.fibre]\nk = 3.0\n",
        r"names \['fibre'\], which is no phase",
    ),
    "missing mesh file": (
        LAMINATE.replace('kind = "laminate"', 'kind = "file"\npath = "nowhere.msh"').replace(
            "fraction = 0.5\nmesh_size = 0.1\n", ""
        ),
        "nowhere.msh' does not exist",
    ),
    "bad toml": ("[rve\nkind = 1", "is not valid TOML"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_clear_error(tmp_path, capsys, case):
    text, message = BAD[case]
    cell = write(tmp_path, text)
    assert main(["homogenize", str(cell)]) == 2
    err = cli_error(capsys)
    assert err.startswith("hmm-fenics: error: ")
    assert err.count("\n") == 1, err
    assert __import__("re").search(message, err), err


def test_missing_config_file(tmp_path, capsys):
    assert main(["homogenize", str(tmp_path / "nothing.toml")]) == 2
    assert "does not exist" in cli_error(capsys)


def test_user_mesh_not_periodic_and_without_groups(tmp_path, capsys):
    from test_rve import _unit_square_msh

    cases = {
        "bad.msh": (
            {"left_nodes": 6, "right_nodes": 9},
            "face x1 = 1 have no partner on face x1 = 0",
        ),
        "groups.msh": (
            {"left_nodes": 6, "right_nodes": 6, "names": ("matrix", "fibre")},
            "lacks the 2D physical group",
        ),
    }
    for name, (kwargs, message) in cases.items():
        _unit_square_msh(tmp_path / name, **kwargs)
        cell = write(
            tmp_path,
            LAMINATE.replace('kind = "laminate"', f'kind = "file"\npath = "{name}"').replace(
                "fraction = 0.5\nmesh_size = 0.1\n", ""
            ),
        )
        assert main(["homogenize", str(cell)]) == 2
        err = cli_error(capsys)
        assert message in err and err.count("\n") == 1, err


def test_user_mesh_relative_to_the_config_file(tmp_path, capsys):
    write_msh(RVESpec("laminate", 2, 0.5, 0.1), tmp_path / "meshes" / "lam.msh")
    cell = write(
        tmp_path,
        LAMINATE.replace('kind = "laminate"', 'kind = "file"\npath = "meshes/lam.msh"').replace(
            "fraction = 0.5\nmesh_size = 0.1\n", ""
        ),
    )
    from mpi4py import MPI

    shared = MPI.COMM_WORLD.bcast(tmp_path, root=0) / "r.json"  # rank 0 writes it
    assert main(["homogenize", str(cell), "--json", str(shared)]) == 0
    data = json.loads(shared.read_text())
    np.testing.assert_allclose(data["tensor"], np.diag([1 / (0.5 / 10 + 0.5), 5.5]), atol=1e-12)
