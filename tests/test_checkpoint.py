"""Checkpoint and restart (issue 12): kill -9, resume on 2 and 3 ranks, corrupt files, signals.

Two kinds of tests:

* runs of ``hmm-fenics`` in subprocesses under ``mpirun -n 2/3`` (only from a serial pytest:
  an mpirun inside an MPI job would join it), on a coarse J2 FE² problem (18 macro points,
  a 50-unknown plastic cell, a load-unload path of 4 steps, each step dissipating): a run
  is killed (SIGKILL, planted by tests/checkpoint_runner.py) after the checkpoint of step
  2, or halfway through writing one, or stopped by SIGTERM; the resumed run's per-step
  results must equal the uninterrupted run's;
* in-process tests (serial and under ``mpirun -n 2/3 python -m mpi4py -m pytest``) of the
  format and of the partition-independent dof keys.

Tolerances: the same rank count repeats the same arithmetic (the restored values are the
float64 bits written), so results agree to round-off, 1e-12 relative; another rank count
sums the macro assembly in another order and solves with another partition of the MUMPS
factorization: round-off of a 1e-10 Newton tolerance, 1e-10 relative (issue 12 point 3).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import pytest

import hmm_fenics  # noqa: F401  (before dolfinx)
from hmm_fenics.run import checkpoint as files
from hmm_fenics.run.identity import dof_keys
from hmm_fenics.run.restart import changed_keys

RUN = """\
[macro]
geometry = "rectangle"
mesh_size = 0.5
quadrature_degree = 1

[dirichlet]
left = [0.0, "free"]
bottom = ["free", 0.0]
right = [0.02, "free"]

[loading]
path = [[0, 0], [1, 1], [2, -0.5]]
steps = 2

[rve]
kind = "inclusion"
dim = 2
fraction = 0.15
mesh_size = 0.45

[physics]
kind = "elasticity"
plane = "strain"

[materials.matrix]
law = "j2"
E = 3.0
nu = 0.35
sigma_y = 0.03
H_iso = 0.3

[materials.inclusion]
E = 70.0
nu = 0.2

[output]
snapshots = []
png = false
"""

BALANCED = RUN + '\n[solver]\nschedule = "balanced"\n'
"""The same problem, points computed where the measured cost is balanced (states travel)."""

HERE = Path(__file__).parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent


def hmm(ranks: int, *args: str, plant: tuple[str, ...] = (), wait: bool = True) -> Any:
    """``hmm-fenics ARGS`` on ``ranks`` ranks (through the kill-planting runner)."""
    if MPI.COMM_WORLD.size > 1:  # a guard: an mpirun inside an MPI job would join it
        pytest.skip("starts its own mpirun")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_"))}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    command = [str(BIN / "mpirun"), "-n", str(ranks), sys.executable]
    command += [str(HERE / "checkpoint_runner.py"), *plant, *args, "-q"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if not wait:
        return process
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def assert_same_steps(resumed: dict, reference: dict, rtol: float) -> None:
    """Every step once, in order; reactions, energies and iterations as the reference's."""
    a, b = resumed["steps"], reference["steps"]
    assert [s["step"] for s in a] == [1, 2, 3, 4] == [s["step"] for s in b]
    for s, t in zip(a, b, strict=True):
        assert s["time"] == t["time"]
        assert s["iterations"] == t["iterations"]
        scale = abs(t["external_work"])
        for key in ("external_work", "internal_work", "stored_energy", "dissipated_energy"):
            assert abs(s[key] - t[key]) <= rtol * scale, (s["step"], key, s[key], t[key])
        force = abs(t["reactions"]["right"][0])
        assert abs(s["reactions"]["right"][0] - t["reactions"]["right"][0]) <= rtol * force
    assert resumed["newton_iterations"] == reference["newton_iterations"]
    flux = np.asarray(reference["mean_flux"])
    assert np.abs(np.asarray(resumed["mean_flux"]) - flux).max() <= rtol * np.abs(flux).max()
    for key in ("flux_max", "flux_min"):
        values = np.asarray(reference[key])
        assert np.abs(np.asarray(resumed[key]) - values).max() <= rtol * np.abs(values).max()


def series_times(xdmf: Path) -> list[float]:
    import xml.etree.ElementTree as ET

    return [float(t.get("Value")) for t in ET.parse(xdmf).getroot().iter("Time")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted 2-rank run (a checkpoint after step 3, then complete) and a 2-rank
    run killed after step 2's checkpoint."""
    base = tmp_path_factory.mktemp("checkpoint")
    (base / "run.toml").write_text(RUN)
    code, err = hmm(
        2, "run", str(base / "run.toml"), "-o", str(base / "reference"), "--checkpoint-every", "3"
    )
    assert code == 0, err
    code, err = hmm(
        2, "run", str(base / "run.toml"), "-o", str(base / "killed"), "--checkpoint-every", "1",
        plant=("--kill-after", "2"),
    )  # fmt: skip
    assert code != 0  # killed by SIGKILL (mpirun reports it)
    return base


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [2, 3])
def test_killed_run_resumes_on_2_and_3_ranks_equal_to_the_uninterrupted_run(runs, ranks):
    killed = runs / "killed"
    assert sorted(p.name for p in files.root(killed).iterdir()) == ["step_000002"]
    assert not (killed / "results.json").exists()
    folder = runs / f"resumed_{ranks}"
    shutil.copytree(killed, folder)
    code, err = hmm(ranks, "run", str(runs / "run.toml"), "-o", str(folder), "--resume")
    assert code == 0, err
    resumed = results(folder)
    assert resumed["ranks"] == ranks
    assert_same_steps(resumed, results(runs / "reference"), 1e-12 if ranks == 2 else 1e-10)
    # the field series go on: every step once, the resumed ones on the resumed run's mesh
    for name in ("displacement", "stress", "plastic_strain"):
        assert series_times(folder / f"{name}.xdmf") == [0.5, 1.0, 1.5, 2.0]
    assert "mesh_1" in (folder / "displacement.xdmf").read_text()


@pytest.mark.serial
def test_a_kill_while_writing_leaves_the_previous_checkpoint_and_is_named(runs):
    folder = runs / "killed_writing"
    code, err = hmm(
        2, "run", str(runs / "run.toml"), "-o", str(folder), "--checkpoint-every", "1",
        plant=("--kill-writing", "3"),
    )  # fmt: skip
    assert code != 0
    names = sorted(p.name for p in files.root(folder).iterdir())
    assert names == [".step_000003.tmp", "step_000002"]  # the previous one stayed
    code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(folder), "--resume")
    assert code == 0, err
    assert "half-written checkpoint" in err and ".step_000003.tmp" in err
    assert_same_steps(results(folder), results(runs / "reference"), 1e-12)


@pytest.mark.serial
def test_corrupt_or_missing_checkpoint_files_are_named(runs):
    good = runs / "killed" / "checkpoint" / "step_000002"
    cases = {
        "flipped": lambda f: f.write_bytes(_flip(f.read_bytes())),
        "truncated": lambda f: f.write_bytes(f.read_bytes()[:-8]),
        "missing": lambda f: f.unlink(),
    }
    for case, damage in cases.items():
        folder = runs / f"corrupt_{case}"
        shutil.copytree(runs / "killed", folder)
        damage(folder / "checkpoint" / "step_000002" / "states.1.npy")
        code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(folder), "--resume")
        assert code == 2, (case, err)
        assert "states.1.npy" in err, err
        assert {"flipped": "SHA-256", "truncated": "bytes", "missing": "missing"}[case] in err
    assert good.is_dir()
    # no checkpoint at all
    empty = runs / "empty"
    empty.mkdir()
    code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(empty), "--resume")
    assert code == 2 and "no complete checkpoint" in err


def as_version_2(step: Path, widen: int) -> None:
    """Rewrite checkpoint folder ``step`` as version 2 wrote it: state rows widened by
    ``widen`` fluctuation columns after the gradient (0: the rows as they are), files and
    manifest re-hashed."""
    import hashlib

    manifest = json.loads((step / files.MANIFEST).read_text())
    for name in [name for name in manifest["files"] if name.startswith("states.")]:
        rows = np.load(step / name)
        if widen:
            rows = np.hstack([rows[:, :3], np.zeros((len(rows), widen)), rows[:, 3:]])
        np.save(step / name, rows)
        data = (step / name).read_bytes()
        manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest["version"] = 2
    text = json.dumps(manifest).encode()
    (step / files.MANIFEST).write_bytes(text)
    (step / files.MANIFEST_SUM).write_text(hashlib.sha256(text).hexdigest())


@pytest.mark.serial
def test_a_checkpoint_of_the_old_state_layout_is_refused_with_exit_2(runs):
    """A version-2 checkpoint (history rows gradient | fluctuation | internal variables, as
    written before the committed fluctuation was derived) is refused naming the change,
    not read with rows of the wrong width, and the advice works: a run without --resume
    but with --overwrite starts again (the review found "without --resume" alone refused
    for the non-empty folder). Built from a real checkpoint: its state rows widened by
    fluctuation columns, files and manifest re-hashed as version 2 wrote them."""
    folder = runs / "old_layout"
    shutil.copytree(runs / "killed", folder)
    as_version_2(folder / "checkpoint" / "step_000002", widen=50)
    code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(folder), "--resume")
    assert code == 2, err
    assert "version 2" in err and "committed fluctuation" in err, err
    assert "without --resume, with --overwrite (or another --output)" in err, err
    assert "Traceback" not in err
    code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(folder), "--overwrite")
    assert code == 0, err
    assert_same_steps(results(folder), results(runs / "reference"), 1e-12)


@pytest.mark.serial
def test_a_version_2_checkpoint_without_history_rows_resumes(runs):
    """Version 3 changed the history state rows only: a linear run's version-2 checkpoint
    (state slices of width 0) resumes, and the resumed steps are the uninterrupted run's
    (same ranks: 1e-12 relative). Fails before the fix: refused about history rows."""
    linear = runs / "linear.toml"
    linear.write_text(RUN.replace('law = "j2"\n', "").replace("sigma_y = 0.03\nH_iso = 0.3\n", ""))
    reference, folder = runs / "linear_reference", runs / "linear_v2"
    code, err = hmm(2, "run", str(linear), "-o", str(reference))
    assert code == 0, err
    code, err = hmm(
        2, "run", str(linear), "-o", str(folder), "--checkpoint-every", "1",
        plant=("--kill-after", "2"),
    )  # fmt: skip
    assert code != 0
    step = folder / "checkpoint" / "step_000002"
    assert np.load(step / "states.0.npy").shape[1] == 0  # no state rows to reinterpret
    as_version_2(step, widen=0)
    code, err = hmm(2, "run", str(linear), "-o", str(folder), "--resume")
    assert code == 0, err
    a, b = results(folder)["steps"], results(reference)["steps"]  # no energies: linear
    assert [s["step"] for s in a] == [1, 2, 3, 4] == [s["step"] for s in b]
    for s, t in zip(a, b, strict=True):
        force = abs(t["reactions"]["right"][0])
        assert abs(s["reactions"]["right"][0] - t["reactions"]["right"][0]) <= 1e-12 * force
        assert abs(s["external_work"] - t["external_work"]) <= 1e-12 * abs(t["external_work"])


def _flip(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


@pytest.mark.serial
def test_a_changed_run_file_is_refused_naming_the_keys_unless_output_only_or_forced(runs):
    changed = runs / "changed.toml"
    changed.write_text(RUN.replace("sigma_y = 0.03", "sigma_y = 0.031").replace("steps = 2", "steps = [2, 2]"))  # fmt: skip
    folder = runs / "changed"
    shutil.copytree(runs / "killed", folder)
    code, err = hmm(2, "run", str(changed), "-o", str(folder), "--resume")
    assert code == 2
    assert "['loading.steps', 'materials.matrix.sigma_y']" in err and "--force" in err
    assert not (folder / "results.json").exists()
    # output keys may change
    quiet = runs / "quiet.toml"
    quiet.write_text(RUN.replace("snapshots = []", 'snapshots = []\nfields = "none"'))
    code, err = hmm(2, "run", str(quiet), "-o", str(folder), "--resume")
    assert code == 0, err
    assert_same_steps(results(folder), results(runs / "reference"), 1e-12)
    # --force resumes with the new sigma_y and says so
    forced = runs / "forced"
    shutil.copytree(runs / "killed", forced)
    code, err = hmm(2, "run", str(changed), "-o", str(forced), "--resume", "--force")
    assert code == 0, err
    assert "--force" in err and "materials.matrix.sigma_y" in err


@pytest.mark.serial
def test_sigterm_stops_every_rank_at_the_end_of_a_step_with_a_checkpoint(runs):
    """Balanced schedule: the states come back to their owners for the checkpoint, and go
    out to the computing ranks of the resumed 3-rank run by the saved costs."""
    folder = runs / "terminated"
    (runs / "balanced.toml").write_text(BALANCED)
    process = hmm(2, "run", str(runs / "balanced.toml"), "-o", str(folder), wait=False)
    try:
        deadline = time.monotonic() + 90
        while not (folder / "displacement.xdmf").exists() or not series_times(
            folder / "displacement.xdmf"
        ):  # step 1 is done: the handlers are in place
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        for pid in _ranks(process.pid):  # a batch system signals every process of the job
            os.kill(pid, signal.SIGTERM)
        _, err = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert "SIGTERM" in err and "--resume" in err
    (step,) = [p.name for p in files.root(folder).iterdir()]
    assert step.startswith("step_") and int(step[5:]) in (1, 2, 3)  # the step it was in
    code, err = hmm(3, "run", str(runs / "balanced.toml"), "-o", str(folder), "--resume")
    assert code == 0, err
    assert_same_steps(results(folder), results(runs / "reference"), 1e-10)


def _ranks(pid: int) -> list[int]:
    """The Python processes below ``pid`` (mpirun → proxy → ranks)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split()
            todo += [int(c) for c in children]
            found += [int(c) for c in children]
    return [p for p in found if "python" in Path(f"/proc/{p}/cmdline").read_text()]


@pytest.mark.serial
def test_a_second_sigint_aborts_at_once(tmp_path):
    script = (
        "import os, signal, time\n"
        "from hmm_fenics.run.signals import StopRequests\n"
        "with StopRequests() as stops:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.1)\n"
        "    assert stops.received == signal.SIGINT\n"
        "    print('first', flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "print('not reached')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 130
    assert done.stdout == "first\n"
    assert "stopping at the end of the current step" in done.stderr
    assert "second SIGINT: aborting at once" in done.stderr


# -- review fixes: mesh identity, signals during a write, finished runs, overwrite, failed writes


def write_square_mesh(path: Path, progression: float) -> None:
    """A unit square of 4 × 4 × 2 triangles (5 nodes a side) with named sides, gmsh 4.1.

    ``progression`` grades the x spacing (1: uniform): the same counts, other coordinates.
    """
    import gmsh

    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("square")
        geo = gmsh.model.geo
        corners = [geo.addPoint(x, y, 0) for x, y in [(0, 0), (1, 0), (1, 1), (0, 1)]]
        sides = [geo.addLine(corners[i], corners[(i + 1) % 4]) for i in range(4)]
        surface = geo.addPlaneSurface([geo.addCurveLoop(sides)])
        geo.synchronize()
        grading = [progression, 1.0, 1.0 / progression, 1.0]  # the top runs right to left
        for side, ratio in zip(sides, grading, strict=True):
            gmsh.model.mesh.setTransfiniteCurve(side, 5, "Progression", ratio)
        gmsh.model.mesh.setTransfiniteSurface(surface)
        for side, name in zip(sides, ["bottom", "right", "top", "left"], strict=True):
            gmsh.model.addPhysicalGroup(1, [side], name=name)
        gmsh.model.addPhysicalGroup(2, [surface], name="domain")
        gmsh.model.mesh.generate(2)
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        gmsh.write(str(path))
    finally:
        gmsh.finalize()


FILE_RUN = RUN.replace(
    'geometry = "rectangle"\nmesh_size = 0.5', 'geometry = "file"\npath = "mesh.msh"'
)
"""The J2 problem on a macro mesh read from mesh.msh (next to the run file): 32 points."""


@pytest.fixture(scope="module")
def signalled(tmp_path_factory):
    """A 2-rank run of FILE_RUN checkpointing every step, rank 0 signalled (SIGTERM) while
    step 1's checkpoint is being written: (exit code, stderr, output folder)."""
    base = tmp_path_factory.mktemp("signalled")
    write_square_mesh(base / "mesh.msh", 1.0)
    (base / "run.toml").write_text(FILE_RUN)
    folder = base / "out"
    code, err = hmm(
        2, "run", str(base / "run.toml"), "-o", str(folder), "--checkpoint-every", "1",
        plant=("--signal-writing", "1"),
    )  # fmt: skip
    return code, err, folder


@pytest.mark.serial
def test_a_signal_during_a_checkpoint_write_stops_after_that_step(signalled):
    """Fails before the fix: the flags were agreed before the write only, so the run went
    on to step 2 and stopped there (a whole step more, checkpoint step_000002)."""
    code, err, folder = signalled
    assert code == 143, err
    assert "stopped by SIGTERM after step 1 " in err and "--resume" in err
    assert sorted(p.name for p in files.root(folder).iterdir()) == ["step_000001"]
    assert series_times(folder / "displacement.xdmf") == [0.5]


@pytest.mark.serial
def test_a_different_macro_mesh_behind_the_same_path_is_refused_even_with_force(
    signalled, tmp_path
):
    """The same run file and mesh path, the mesh file replaced by one with the same counts
    of nodes, cells and points but other coordinates. Fails before the fix: every key was
    found, so the run resumed silently with the states of other points."""
    _, _, checkpointed = signalled
    write_square_mesh(tmp_path / "mesh.msh", 1.5)
    (tmp_path / "run.toml").write_text(FILE_RUN)
    for extra in ([], ["--force"]):
        folder = tmp_path / f"out{len(extra)}"
        shutil.copytree(checkpointed, folder)
        code, err = hmm(2, "run", str(tmp_path / "run.toml"), "-o", str(folder), "--resume", *extra)
        assert code == 2, err
        assert "written for another mesh" in err, err
        assert "macro mesh node coordinates" in err and "--force does not override" in err
        assert "macro mesh nodes:" not in err  # the counts are the same: only the hash differs
        assert not (folder / "results.json").exists()


@pytest.mark.serial
def test_resuming_a_finished_run_reruns_nothing_unless_forced(runs, tmp_path):
    """Fails before the fix: the resume recomputed step 4 from the checkpoint of step 3 and
    wrote results.json again."""
    folder = tmp_path / "finished"
    shutil.copytree(runs / "reference", folder)
    before = (folder / "results.json").read_bytes()
    code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(folder), "--resume")
    assert code == 0, err
    assert "already complete" in err and "step 4" not in err
    assert (folder / "results.json").read_bytes() == before
    # --force computes the tail again: step 4 from the checkpoint of step 3, equal results
    code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(folder), "--resume", "--force")
    assert code == 0, err
    assert "--force" in err and "complete" in err
    assert_same_steps(results(folder), results(runs / "reference"), 1e-12)


@pytest.mark.serial
def test_overwrite_removes_the_replaced_runs_checkpoints(runs, tmp_path):
    """A run started with --overwrite on the killed run's folder, killed itself before its
    first checkpoint: a --resume must not pick the old run's step 2. Fails before the fix
    (the old step_000002 stayed and was resumed from)."""
    folder = tmp_path / "overwritten"
    shutil.copytree(runs / "killed", folder)
    code, err = hmm(
        2, "run", str(runs / "run.toml"), "-o", str(folder), "--overwrite",
        plant=("--kill-at", "1"),
    )  # fmt: skip
    assert code != 0  # killed
    assert not list(files.root(folder).glob("step_*"))
    code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(folder), "--resume")
    assert code == 2 and "no complete checkpoint" in err, err


@pytest.mark.serial
def test_a_checkpoint_folder_that_cannot_be_written_is_refused_at_the_start(runs, tmp_path):
    """A regular file where checkpoint/ goes (as root, chmod does not stop writes). Fails
    before the fix: nothing looked before the solve (exit 0 here, where no checkpoint was
    asked for by count; a SIGTERM or a due checkpoint would have ended the run with exit 1
    and lost every step)."""
    folder = tmp_path / "blocked"
    folder.mkdir()
    (folder / "checkpoint").write_text("not a folder")
    code, err = hmm(2, "run", str(runs / "run.toml"), "-o", str(folder), "--overwrite")
    assert code == 2, err
    assert "checkpoints cannot be written to" in err and str(folder / "checkpoint") in err
    assert not (folder / "results.json").exists()


@pytest.mark.serial
def test_failed_checkpoint_writes_warn_and_go_on_and_a_signalled_one_says_so(runs, tmp_path):
    """Rank 1's disk is full from step 2 on (ENOSPC halfway through a slice), SIGTERM
    arrives while step 3's checkpoint is written. Fails before the fix: the failed write of
    step 2 ended the run with exit 1."""
    folder = tmp_path / "full"
    code, err = hmm(
        2, "run", str(runs / "run.toml"), "-o", str(folder), "--checkpoint-every", "1",
        plant=("--fail-writing", "2", "--signal-writing", "3"),
    )  # fmt: skip
    # step 2's failure: a warning, the run goes on to step 3 (its fields are written)
    assert "checkpoint of step 2 could not be written" in err and "the run goes on" in err
    assert "No space left on device" in err
    assert series_times(folder / "displacement.xdmf") == [0.5, 1.0, 1.5]
    # the signalled checkpoint of step 3 failed too: the stop is still 143, and says so
    assert code == 143, err
    assert "stopped by SIGTERM after step 3" in err and "could not be written" in err
    assert "previous checkpoint" in err and "step_000001" in err
    # no half-written folder left; the checkpoint of step 1 is intact and resumable
    assert sorted(p.name for p in files.root(folder).iterdir()) == ["step_000001"]
    found, notes = files.latest(folder)
    assert found.step == 1 and notes == []
    for name in found.manifest["files"]:
        files.read_verified(found, name)


POWER_LAW = """\
[macro]
geometry = "file"
path = "mesh.msh"
quadrature_degree = 1

[dirichlet]
left = [0.0, "free"]
bottom = ["free", 0.0]
right = [-0.02, "free"]

[loading]
path = [[0, 0], [1, 1]]
steps = 4

[rve]
kind = "inclusion"
dim = 2
fraction = 0.2
mesh_size = 0.3

[physics]
kind = "elasticity"
plane = "strain"

[materials.matrix]
E = 3.0
nu = 0.35
eps0 = 0.01
n = 0.3

[materials.inclusion]
E = 400.0
nu = 0.2

[output]
fields = "none"
png = false
snapshots = []

[solver]
schedule = "balanced"
"""
"""A path-independent power-law cell, points computed where the cost is balanced."""


@pytest.mark.serial
def test_a_balanced_power_law_run_resumes_with_its_warm_starts(tmp_path):
    """The uninterrupted run writes a checkpoint after step 2; the resume from it must
    repeat step 3 as the uninterrupted run did: the same warm starts give the same micro
    answers, bit for bit on the same partition (first residual to 1e-14, relative: round-
    off of one residual norm). Before the fix a balanced model had no warm_rows, the
    resume started every micro Newton cold: the same converged answers to the micro
    tolerance only (a relative difference ~1e-11 in this residual)."""
    write_square_mesh(tmp_path / "mesh.msh", 1.0)
    (tmp_path / "run.toml").write_text(POWER_LAW)
    reference = tmp_path / "reference"
    code, err = hmm(2, "run", str(tmp_path / "run.toml"), "-o", str(reference),
                    "--checkpoint-every", "2")  # fmt: skip
    assert code == 0, err
    folder = tmp_path / "resumed"
    shutil.copytree(reference, folder)
    (folder / "results.json").unlink()
    (files.root(folder) / "complete.json").unlink(missing_ok=True)  # the fix's mark
    code, err = hmm(2, "run", str(tmp_path / "run.toml"), "-o", str(folder), "--resume")
    assert code == 0, err
    a, b = results(folder)["steps"], results(reference)["steps"]
    assert [s["step"] for s in a] == [1, 2, 3, 4]
    first, expected = a[2]["residuals"][0], b[2]["residuals"][0]
    assert abs(first - expected) <= 1e-14 * expected, (first, expected)
    assert a[2]["iterations"] == b[2]["iterations"]


# -- in process (serial and MPI) ---------------------------------------------------------


@pytest.mark.parametrize("degree", [1, 2])
def test_dof_keys_restore_a_field_on_another_partition(tmp_path, degree):
    """u = f(x) written in slices by this partition, read back on a one-rank copy of the mesh."""
    from dolfinx import fem, mesh

    comm = MPI.COMM_WORLD
    folder = comm.bcast(tmp_path, root=0)

    def f(x):
        return np.stack([1 + x[0] + 2 * x[1] ** 2, x[0] * x[1] - 3])

    def space(c):
        msh = mesh.create_unit_square(c, 5, 3, mesh.CellType.triangle)
        return fem.functionspace(msh, ("Lagrange", degree, (2,)))

    V = space(comm)
    u = fem.Function(V)
    u.interpolate(f)
    owned = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
    keys = dof_keys(V)
    total = comm.allreduce(len(keys), op=MPI.SUM)
    assert len(np.unique(np.concatenate(comm.allgather(keys)))) == total  # one key per dof
    files.write(comm, folder, 1, {"dofs": keys, "u": u.x.array[:owned]}, "run", {})
    found, notes = files.latest(folder)
    assert notes == [] and found.manifest["ranks"] == comm.size
    W = space(MPI.COMM_SELF)
    w = fem.Function(W)
    w.interpolate(f)
    wanted = dof_keys(W)
    values = {}
    for key_file, value_file in zip(found.slices("dofs"), found.slices("u"), strict=True):
        keys, u_values = files.read_array(found, key_file), files.read_array(found, value_file)
        values.update(zip(keys, u_values, strict=True))
    restored = np.array([values[k] for k in wanted])
    # f is in the space: both interpolants are f at the dofs, to round-off
    assert np.abs(restored - w.x.array[: len(wanted)]).max() < 1e-13


def test_a_checkpoint_replaces_the_previous_only_when_complete(tmp_path):
    comm = MPI.COMM_WORLD
    folder = comm.bcast(tmp_path, root=0)
    rows = np.arange(6.0).reshape(2, 3) + comm.rank
    files.write(comm, folder, 1, {"a": rows}, "text", {"note": "one"})
    if comm.rank == 0:  # what a kill while writing step 2 leaves
        (files.root(folder) / ".step_000002.tmp").mkdir()
    comm.barrier()
    found, notes = files.latest(folder)
    assert found.step == 1 and ".step_000002.tmp" in notes[0]
    assert found.run_text() == "text" and found.manifest["note"] == "one"
    for rank, name in enumerate(found.slices("a")):
        assert (files.read_array(found, name) == np.arange(6.0).reshape(2, 3) + rank).all()
    comm.barrier()  # every rank looked before rank 0 clears the stale folder
    files.write(comm, folder, 2, {"a": rows}, "text", {"note": "two"})
    found, notes = files.latest(folder)
    assert found.step == 2 and notes == []
    assert sorted(p.name for p in files.root(folder).iterdir()) == ["step_000002"]
    comm.barrier()


def test_changed_keys_name_physics_keys_and_ignore_output():
    old = {"materials": {"matrix": {"E": 3.0, "nu": 0.3}}, "output": {"png": True}}
    new = {"materials": {"matrix": {"E": 3.0, "nu": 0.25}}, "output": {"png": False}}
    assert changed_keys(old, new) == ["materials.matrix.nu"]
    assert changed_keys(old, {**old, "loading": {"steps": 3}}) == ["loading.steps"]
    assert changed_keys(old, old) == []


def test_numbers_compare_as_numbers_and_period_and_schedule_may_change():
    """Fails before the fix: ``E = 3`` against ``E = 3.0`` (and [0, 0] against [0.0, 0])
    was a change, and so were micro.period and solver.schedule."""
    old = {
        "materials": {"matrix": {"E": 3, "nu": 0.3, "law": "j2"}},
        "loading": {"path": [[0, 0], [1, 1]], "steps": 2},
        "micro": {"period": 0.01},
        "solver": {"schedule": "owner", "rtol": 1e-10},
    }
    new = {
        "materials": {"matrix": {"E": 3.0, "nu": 0.3, "law": "j2"}},
        "loading": {"path": [[0.0, 0], [1, 1.0]], "steps": 2.0},
        "micro": {"period": 0.02},
        "solver": {"schedule": "balanced", "rtol": 1e-10},
    }
    assert changed_keys(old, new) == []
    new["materials"]["matrix"]["E"] = 3.0000001
    new["solver"]["rtol"] = 1e-9
    assert changed_keys(old, new) == ["materials.matrix.E", "solver.rtol"]
    assert changed_keys({"a": {"flag": True}}, {"a": {"flag": 1}}) == ["a.flag"]  # not a number


def test_a_changed_manifest_is_named(tmp_path):
    """A byte of the manifest's time flipped (0.5 → 0.4): the per-file checksums all hold,
    only the manifest's own checksum finds it. Fails before the fix (no such checksum: the
    changed time was used)."""
    comm = MPI.COMM_WORLD
    folder = comm.bcast(tmp_path, root=0)
    files.write(comm, folder, 3, {"a": np.ones((2, 2))}, "text", {"time": 0.5})
    comm.barrier()
    found, _ = files.latest(folder)
    assert found.manifest["time"] == 0.5
    comm.barrier()
    if comm.rank == 0:
        manifest = found.folder / files.MANIFEST
        text = manifest.read_text()
        assert text.count('"time": 0.5') == 1
        manifest.write_text(text.replace('"time": 0.5', '"time": 0.4'))
    comm.barrier()
    with pytest.raises(files.CheckpointError, match=r"manifest\.json is corrupt: its SHA-256"):
        files.latest(folder)
    comm.barrier()
