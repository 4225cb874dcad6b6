"""`hmm-fenics run`: schema validation, outputs, energy and reactions, warnings.

Runs in-process on every rank under mpirun: the output folder is rank 0's ``tmp_path``.
"""

import json
import re

from mpi4py import MPI

import meshio
import numpy as np
import pytest
from conftest import strip_mesh

import hmm_fenics as hf
from hmm_fenics.cli import main

DIFFUSION = """\
[macro]
geometry = "rectangle"
mesh_size = 0.25

[dirichlet]
left = 1.0
right = 0.0

[rve]
kind = "inclusion"
dim = 2
fraction = 0.3
mesh_size = 0.1

[physics]
kind = "diffusion"

[materials.matrix]
k = 1.0

[materials.inclusion]
k = 10.0
"""

ELASTIC = """\
[macro]
geometry = "rectangle"
mesh_size = 0.25

[dirichlet]
left = [0.0, 0.0]
right = [0.01, "free"]

[loading]
steps = {steps}

[rve]
kind = "inclusion"
dim = 2
fraction = 0.3
mesh_size = 0.1

[physics]
kind = "elasticity"

[materials.matrix]
E = 3.0
nu = 0.35

[materials.inclusion]
E = 70.0
nu = 0.2

[output]
snapshots = [[0.5, 0.5]]
"""


@pytest.fixture
def folder(tmp_path):
    """One folder for all ranks (rank 0's tmp_path)."""
    return MPI.COMM_WORLD.bcast(tmp_path, root=0)


def write(folder, text, name="run.toml"):
    comm = MPI.COMM_WORLD
    path = folder / name
    if comm.rank == 0:
        path.write_text(text)
    comm.barrier()
    return path


def run(folder, text, *extra, out="out"):
    """Run the CLI on every rank; returns (exit code, results or None)."""
    config = write(folder, text)
    code = main(["run", str(config), "-o", str(folder / out), *extra])
    results = folder / out / "results.json"
    data = json.loads(results.read_text()) if code == 0 and results.exists() else None
    return code, data


BAD = {
    "unknown key": (
        DIFFUSION.replace("mesh_size = 0.25", "mesh_size = 0.25\nsize = 2"),
        r"macro\.size",
    ),
    "wrong type": (
        DIFFUSION.replace("mesh_size = 0.25", 'mesh_size = "fine"'),
        r"macro\.mesh_size must be a number",
    ),
    "nu out of range": (
        ELASTIC.format(steps=1).replace("nu = 0.2", "nu = 0.7"),
        r"materials\.inclusion\.nu = 0\.7 is out of range: expected a Poisson's ratio in \(-1, 0\.5\)",
    ),
    "steps zero": (
        ELASTIC.format(steps=0),
        r"loading\.steps must be an integer from 1 to 1000, got 0",
    ),
    "no such boundary": (
        DIFFUSION.replace("right = 0.0", "front = 0.0"),
        r"dirichlet\.front.*has \['left', 'right', 'bottom', 'top'\]",
    ),
    "petsc without prefix": (
        DIFFUSION + '[petsc]\npc_type = "lu"\n',
        r"petsc\.pc_type: PETSc options here start with",
    ),
    "fields format": (
        DIFFUSION + '[output]\nfields = "vtk"\n',
        r'output\.fields must be "xdmf", "vtx" or "none"',
    ),
    "snapshot point": (
        DIFFUSION + "[output]\nsnapshots = [[0.5]]\n",
        r"output\.snapshots\[0\] must be a point of 2",
    ),
    "micro model": (
        DIFFUSION + '[micro]\nmodel = "fast"\n',
        r'micro\.model must be "cell" or "effective"',
    ),
    "components": (
        ELASTIC.format(steps=1).replace("left = [0.0, 0.0]", "left = [0.0]"),
        r"dirichlet\.left must be a list of 2 components",
    ),
    "all free": (
        ELASTIC.format(steps=1).replace("left = [0.0, 0.0]", 'left = ["free", "free"]'),
        r"dirichlet\.left leaves every component free",
    ),
    "graded axis": (
        DIFFUSION
        + '[micro.graded]\nparameter = "fraction"\naxis = "z"\nstart = [0, 0.1]\nend = [1, 0.4]\nstep = 0.05\n',
        r"micro\.graded\.axis must be one of \['x', 'y'\]",
    ),
    "graded fraction": (
        DIFFUSION
        + '[micro.graded]\nparameter = "fraction"\naxis = "x"\nstart = [0, 0.1]\nend = [1, 1.4]\nstep = 0.05\n',
        r"micro\.graded: the RVE at fraction = 1\.4: rve\.fraction",
    ),
    "effective nonlinear": (
        DIFFUSION.replace("k = 10.0", "k = 10.0\np = 3.0\ng0 = 1.0")
        + '[micro]\nmodel = "effective"\n',
        r'micro\.model = "effective" needs linear phases',
    ),
    "unknown solver type": (
        DIFFUSION + '[petsc]\nhmm_macro_pc_type = "nonsense"\n',
        r"unknown PETSc type in the macro solver options",
    ),
    "box for 2D": (
        DIFFUSION.replace('"rectangle"', '"box"'),
        r"macro\.geometry = 'box' is 3D but the RVE and physics are 2D",
    ),
    "no dirichlet": (
        DIFFUSION.replace("left = 1.0\nright = 0.0", ""),
        r"\[dirichlet\] is missing or empty",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_run_file_is_one_clear_error(folder, capsys, case):
    text, message = BAD[case]
    code, _ = run(folder, text)
    assert code == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:  # the other ranks fail alike, silently
        assert err.startswith("hmm-fenics: error: ") and err.count("\n") == 1, err
        assert re.search(message, err), err
    else:
        assert err == ""
    assert not (folder / "out" / "results.json").exists()


def test_refuses_a_non_empty_output_folder(folder):
    comm = MPI.COMM_WORLD
    keep = folder / "out" / "mine.txt"
    if comm.rank == 0:
        keep.parent.mkdir()
        keep.write_text("precious")
    comm.barrier()
    code, _ = run(folder, DIFFUSION)
    assert code == 2 and keep.read_text() == "precious"
    code, data = run(folder, DIFFUSION, "--overwrite", "-q")
    assert code == 0 and data["job"] == "fe2" and keep.read_text() == "precious"


def test_elasticity_run_energy_reactions_and_fields(folder):
    code, one = run(folder, ELASTIC.format(steps=1), "-q", out="one")
    assert code == 0
    code, two = run(folder, ELASTIC.format(steps=2), "-q", out="two")
    assert code == 0
    right, left = two["reactions"]["right"], two["reactions"]["left"]
    # Clapeyron: a linear body loaded by displacements stores half the work of the reactions
    assert two["energy"] == pytest.approx(0.5 * right[0] * 0.01, rel=1e-9)
    # the trapezoidal load-path work is exact for a linear law, whatever the steps
    assert two["energy"] == pytest.approx(one["energy"], rel=1e-9)
    assert right[1] is None  # free component
    # equilibrium: the two supports take equal and opposite forces
    assert abs(left[0] + right[0]) < 1e-10 * abs(right[0])
    assert abs(left[1]) < 1e-10 * abs(right[0])
    assert len(two["steps"]) == 2 and [s["factor"] for s in two["steps"]] == [0.5, 1.0]
    assert two["input"]["config"]["loading"]["steps"] == 2
    assert {"dolfinx", "petsc4py", "gmsh", "hmm_fenics", "mpi"} <= set(two["versions"])
    assert two["ranks"] == MPI.COMM_WORLD.size
    # the micro fields average to the macro stress of their point (Mandel ↔ tensor)
    snap = two["snapshots"][0]
    s = np.asarray(snap["mean_flux"])
    mandel = [s[0, 0], s[1, 1], np.sqrt(2) * s[0, 1]]
    np.testing.assert_allclose(mandel, snap["macro_flux"], atol=1e-10 * np.abs(mandel).max())
    assert np.linalg.norm(np.asarray(snap["x"]) - [0.5, 0.5]) < 0.25
    out = folder / "two"
    for name in ("total", "fluctuation", "stress", "phase"):
        assert (out / snap["files"][name]).exists()
    assert (out / "macro.png").stat().st_size > 10_000 and (out / "rve.png").stat().st_size > 10_000
    with meshio.xdmf.TimeSeriesReader(str(out / "displacement.xdmf")) as reader:
        points, cells = reader.read_points_cells()
        assert reader.num_steps == 2
        _, point_data, _ = reader.read_data(1)
    u = point_data["displacement"]
    assert np.isclose(u[np.isclose(points[:, 0], 1.0), 0], 0.01).all()
    with meshio.xdmf.TimeSeriesReader(str(out / "stress.xdmf")) as reader:
        reader.read_points_cells()
        _, _, cell_data = reader.read_data(1)
    sigma = cell_data["stress"][0].reshape(-1, 3, 3)
    n_cells = sum(len(c.data) for c in cells)
    assert sigma.shape[0] == n_cells and np.allclose(sigma[:, 0, 1], sigma[:, 1, 0])
    # the cell averages integrate to the mean stress of the quadrature points
    assert sigma[:, 0, 0].mean() == pytest.approx(two["mean_flux"][0], rel=0.2)


def test_nonlinear_run_in_load_steps(folder):
    text = DIFFUSION.replace("k = 10.0", "k = 10.0\np = 4.0\ng0 = 0.5")
    text += "[loading]\nsteps = {steps}\n[output]\npng = false\n"
    code, coarse = run(folder, text.format(steps=2), "-q", out="coarse")
    assert code == 0
    code, fine = run(folder, text.format(steps=4), "-q", out="fine")
    assert code == 0
    # the end state does not depend on the path (deformation theory): same reactions
    assert fine["reactions"]["left"][0] == pytest.approx(coarse["reactions"]["left"][0], rel=1e-8)
    # the load-path work converges at second order in the step: 2 → 4 steps changes it little
    assert fine["energy"] == pytest.approx(coarse["energy"], rel=1e-2)
    # the stiffening inclusion makes the energy exceed the linear one at the same ΔT
    code, linear = run(folder, DIFFUSION + "[output]\npng = false\n", "-q", out="linear")
    assert fine["energy"] > linear["energy"]
    snap = fine["snapshots"][0]
    # the snapshot's micro Newton meets its tolerance relative to the whole flux, so compare
    # against the flux's size: a near-zero component (3e-6 here) has no relative accuracy
    scale = np.abs(snap["macro_flux"]).max()
    np.testing.assert_allclose(snap["mean_flux"], snap["macro_flux"], rtol=0, atol=1e-7 * scale)
    assert all(s["iterations"] >= 2 for s in fine["steps"])  # Newton, not one linear solve


def test_schedules_petsc_options_and_vtx_agree(folder):
    code, owner = run(folder, DIFFUSION, "-q", out="owner")
    assert code == 0
    options = (
        '[solver]\nschedule = "balanced"\n[petsc]\nhmm_macro_ksp_type = "cg"\n'
        'hmm_macro_pc_type = "jacobi"\nhmm_macro_ksp_rtol = 1e-13\n'
        'hmm_micro_pc_type = "lu"\n[output]\nfields = "vtx"\n'
    )
    code, other = run(folder, DIFFUSION + options, "-q", out="other")
    assert code == 0
    assert other["reactions"]["left"][0] == pytest.approx(owner["reactions"]["left"][0], rel=1e-9)
    assert (folder / "other" / "temperature.bp").is_dir()


def test_homogenization_job_matches_homogenize(folder):
    cell = DIFFUSION.split("[rve]")[1]
    code, data = run(folder, "[rve]" + cell, "-q")
    assert code == 0 and data["job"] == "homogenization"
    physics = hf.Diffusion(2)
    expected = hf.homogenize(
        hf.RVESpec("inclusion", 2, 0.3, 0.1),
        physics,
        {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)},
    ).tensor
    np.testing.assert_allclose(data["tensor"], expected, rtol=1e-12)
    # the corrector of e_j averages to the j-th column of the tensor
    for j, snap in enumerate(data["snapshots"]):
        np.testing.assert_allclose(snap["mean_flux"], expected[:, j], rtol=1e-9)


def test_warnings_for_suspicious_set_ups(folder, caplog):
    text = DIFFUSION.replace("mesh_size = 0.1", "mesh_size = 0.3") + "[micro]\nperiod = 0.1\n"
    code, _ = run(folder, text.replace("fraction = 0.3", "fraction = 0.05"))
    assert code == 0
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    if MPI.COMM_WORLD.rank == 0:
        assert "micro mesh too coarse for the inclusion" in warnings
        assert "cell resonance: the macro element size H = " in warnings
    else:  # only rank 0 reports
        assert warnings == ""


def test_readme_documents_every_key():
    from pathlib import Path

    from hmm_fenics.run.schema import EXAMPLE, parse_run_config

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert EXAMPLE in readme
    # and the example is itself a valid run file
    import tomllib

    config = parse_run_config(tomllib.loads(EXAMPLE), Path("."))
    assert config.macro is not None and config.macro.geometry == "plate-with-hole"


def test_user_macro_mesh_and_its_boundary_names(folder, capsys):
    if MPI.COMM_WORLD.rank == 0:
        strip_mesh(folder / "strip.msh")
    MPI.COMM_WORLD.barrier()
    cell = DIFFUSION.split("[rve]")[1]
    text = (
        '[macro]\ngeometry = "file"\npath = "strip.msh"\n\n[dirichlet]\ninlet = 1.0\noutlet = 0.0\n'
    )
    code, data = run(folder, text + "[rve]" + cell, "-q")
    assert code == 0
    inlet, outlet = data["reactions"]["inlet"][0], data["reactions"]["outlet"][0]
    assert inlet > 0 and abs(inlet + outlet) < 1e-10 * inlet  # conservation
    # a wrong name is known only once the mesh is read: still one error on every rank
    code, _ = run(folder, text.replace("outlet = 0.0", "exit = 0.0") + "[rve]" + cell, out="bad")
    assert code == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert (
            "boundary name(s) ['exit'] are not in the macro mesh, which has ['inlet', 'outlet']"
            in err
        )


@pytest.mark.serial
def test_failure_on_one_rank_aborts_instead_of_hanging(tmp_path):
    """Rank 0 cannot read its run file, rank 1 can: rank 0 reports and aborts the job."""
    import subprocess
    import sys
    from pathlib import Path

    good = tmp_path / "run.toml"
    good.write_text(DIFFUSION)
    script = tmp_path / "uneven.py"
    script.write_text(
        "import sys\nfrom mpi4py import MPI\nfrom hmm_fenics.cli import main\n"
        f"path = {str(good)!r} if MPI.COMM_WORLD.rank == 1 else 'missing.toml'\n"
        f"sys.exit(main(['run', path, '-o', {str(tmp_path / 'out')!r}]))\n"
    )
    mpirun = Path(sys.executable).parent / "mpirun"
    proc = subprocess.run(
        [str(mpirun if mpirun.exists() else "mpirun"), "-n", "2", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,  # the agreement waits 20 s, then aborts: far from a hang
        check=False,
    )
    assert proc.returncode != 0
    assert "hmm-fenics: rank 0: error: config file 'missing.toml' does not exist." in proc.stderr


def test_three_dimensional_run(folder):
    text = (
        ELASTIC.format(steps=1)
        .replace('"rectangle"', '"box"')
        .replace("mesh_size = 0.25", "mesh_size = 0.5")
    )
    text = text.replace("left = [0.0, 0.0]", "left = [0.0, 0.0, 0.0]").replace(
        'right = [0.01, "free"]', 'right = [0.01, "free", "free"]'
    )
    text = text.replace("dim = 2", "dim = 3").replace("mesh_size = 0.1", "mesh_size = 0.2")
    text = text.replace("fraction = 0.3", "fraction = 0.2")
    text = text.replace("snapshots = [[0.5, 0.5]]", "snapshots = [[0.5, 0.5, 0.5]]")
    code, data = run(folder, text, "-q")
    assert code == 0 and data["dim"] == 3
    right, left = data["reactions"]["right"], data["reactions"]["left"]
    assert data["energy"] == pytest.approx(0.5 * right[0] * 0.01, rel=1e-9)  # Clapeyron
    assert abs(left[0] + right[0]) < 1e-10 * right[0]
    snap = data["snapshots"][0]
    s = np.asarray(snap["mean_flux"])  # 3×3 stress; Mandel order 11 22 33 23 13 12
    r2 = np.sqrt(2)
    mandel = [s[0, 0], s[1, 1], s[2, 2], r2 * s[1, 2], r2 * s[0, 2], r2 * s[0, 1]]
    np.testing.assert_allclose(mandel, snap["macro_flux"], atol=1e-9 * np.abs(mandel).max())
    assert not (folder / "out" / "macro.png").exists()  # pictures are 2D only
