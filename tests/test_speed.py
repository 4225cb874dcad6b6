"""Whole-process speed: no SciPy on the hot path, NumPy node matching, one surface mesh per 2D cell."""

import subprocess
import sys
import textwrap
import threading
from collections import deque

import gmsh
import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.errors import PeriodicityError
from hmm_fenics.micro.sparse import to_csr
from hmm_fenics.rve.geometry import FRACTION_TOLERANCE
from hmm_fenics.rve.periodic import component_labels, periodic_images

DISK_CELL = """\
[rve]
kind = "inclusion"
dim = 2
fraction = 0.4
mesh_size = 0.1
[physics]
kind = "diffusion"
[materials.matrix]
k = 1.0
[materials.inclusion]
k = 10.0
"""


@pytest.mark.serial
def test_homogenize_process_imports_no_scipy(tmp_path):
    """A generated cell, meshed, matched, homogenized and written without loading SciPy."""
    (tmp_path / "cell.toml").write_text(DISK_CELL)
    script = textwrap.dedent(
        f"""
        import sys
        from hmm_fenics.cli import main
        code = main(["homogenize", {str(tmp_path / "cell.toml")!r},
                     "--json", {str(tmp_path / "out.json")!r}, "-q"])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] == "scipy")
        print("code", code, "scipy", heavy[:3], "metadata", "importlib.metadata" in sys.modules)
        """
    )
    env = {"HMM_FENICS_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "code 0 scipy []" in run.stdout, run.stdout
    assert (tmp_path / "out.json").is_file()


def brute_force_images(x, lower, upper, tol):
    """The expected image of every point, by comparing all pairs."""
    wrapped = np.where(np.abs(x - upper) < tol, lower, x)
    dist = np.linalg.norm(wrapped[:, None, :] - x[None, :, :], axis=2)
    dist[:, np.abs(x - upper).min(axis=1) < tol] = np.inf  # images lie on no max face
    image = np.argmin(dist, axis=1)
    moved = (np.abs(x - upper) < tol).any(axis=1)
    return np.where(moved, image, np.arange(len(x)))


@pytest.mark.parametrize("dim", [2, 3])
def test_node_matching_is_exact_within_the_tolerance(dim):
    """Partners off by up to 0.4·tol (across bin edges, in any order) are found; 3·tol is not."""
    rng = np.random.default_rng(7)
    lower, upper = np.full(dim, -0.5), np.full(dim, 1.5)  # cell side 2: tol = 2e-8
    tol = 1e-8 * 2.0
    n = 9 if dim == 2 else 5
    axis = np.linspace(-0.5, 1.5, n)
    grid = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    inner = rng.uniform(-0.4, 1.4, size=(50, dim))
    x = np.concatenate([grid, inner])
    on_face = (np.abs(x - lower) < 1e-12) | (np.abs(x - upper) < 1e-12)
    # each coordinate moved by up to 0.4 tol / √dim, face coordinates kept on the face
    jitter = rng.uniform(-1, 1, size=x.shape) * 0.4 * tol / np.sqrt(dim)
    x = np.where(on_face, x, x + jitter)
    order = rng.permutation(len(x))
    x = x[order]
    points = np.zeros((len(x), 3))
    points[:, :dim] = x
    image = periodic_images(points, lower, upper)
    np.testing.assert_array_equal(image, brute_force_images(x, lower, upper, tol))
    assert np.count_nonzero(image != np.arange(len(x))) == len(grid) - (n - 1) ** dim
    # a max-face node 3 tol away from its partner has none
    k = np.flatnonzero((np.abs(x[:, 0] - upper[0]) < 1e-12) & ~on_face[order][:, 1:].any(axis=1))
    points[k[0], 1] += 3 * tol
    with pytest.raises(PeriodicityError, match=r"face x1 = 1.5 have no partner on face x1 = -0.5"):
        periodic_images(points, lower, upper)


def test_component_labels_agree_with_a_breadth_first_search():
    rng = np.random.default_rng(3)
    n = 300
    a, b = rng.integers(0, n, size=(2, 260))
    labels = component_labels(n, a, b)
    neighbours = [[] for _ in range(n)]
    for i, j in zip(a, b, strict=True):
        neighbours[i].append(j)
        neighbours[j].append(i)
    expected = np.full(n, -1)
    for start in range(n):  # in increasing order: each component is labelled by its minimum
        if expected[start] >= 0:
            continue
        expected[start] = start
        queue = deque([start])
        while queue:
            for j in neighbours[queue.popleft()]:
                if expected[j] < 0:
                    expected[j] = start
                    queue.append(j)
    np.testing.assert_array_equal(labels, expected)


def test_csr_products_match_the_dense_matrix():
    from mpi4py import MPI
    from petsc4py import PETSc

    rng = np.random.default_rng(5)
    dense = rng.standard_normal((40, 30)) * (rng.random((40, 30)) < 0.2)
    dense[7] = 0.0  # an empty row
    A = PETSc.Mat().createAIJ(dense.shape, comm=MPI.COMM_SELF)
    A.setUp()
    rows, cols = np.nonzero(dense)
    for i, j in zip(rows, cols, strict=True):
        A.setValue(int(i), int(j), dense[i, j])
    A.assemble()
    csr = to_csr(A)
    x, X, Y = rng.standard_normal(30), rng.standard_normal((30, 3)), rng.standard_normal((40, 2))
    np.testing.assert_allclose(csr @ x, dense @ x, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(csr @ X, dense @ X, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(csr.T @ Y, dense.T @ Y, rtol=1e-14, atol=1e-14)
    assert csr.T.T is csr
    with pytest.raises(ValueError, match="cannot multiply"):
        csr @ Y


@pytest.mark.parametrize(
    "spec",
    [
        hf.RVESpec("inclusion", 2, 0.4, 0.1),  # 45-gon: 3e-3 short before the fit
        hf.RVESpec("inclusion", 2, 0.3, 0.1, void=True, center=[1.0, 0.5]),
        hf.RVESpec("hex-array", 2, 0.5, 0.1),
        hf.RVESpec("random", 2, 0.4, 0.05, count=8, seed=3),
    ],
    ids=["disk", "void-disk-on-a-face", "hex-array", "random"],
)
def test_2d_curved_cells_hit_the_fraction_with_one_surface_mesh(spec, monkeypatch):
    generate = gmsh.model.mesh.generate
    dims: list[int] = []

    def counted(dim=3):
        dims.append(dim)
        generate(dim)

    monkeypatch.setattr(gmsh.model.mesh, "generate", counted)
    rve = hf.build_rve(spec, cache=False)
    assert dims.count(2) == 1, dims
    # the fraction of the final mesh, measured from its cells by build_rve
    assert abs(rve.fraction / spec.fraction - 1) < FRACTION_TOLERANCE


def test_version_is_looked_up_when_asked_for(capsys):
    from importlib import metadata

    from hmm_fenics.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    try:
        expected = metadata.version("hmm_fenics")
    except metadata.PackageNotFoundError:
        expected = "0+unknown"
    assert capsys.readouterr().out == f"hmm-fenics {expected}\n"
    assert hf.__version__ == expected


def test_a_fraction_left_off_target_is_reported_honestly(monkeypatch, caplog):
    """With the fit cut to one pass, the 45-gon's own fraction is kept, measured and logged."""
    from hmm_fenics.rve import geometry

    monkeypatch.setattr(geometry, "FIT_STEPS", 1)
    spec = hf.RVESpec("inclusion", 2, 0.4, 0.1)
    rve = hf.build_rve(spec, cache=False)
    # the polygon inscribed in the disk: its area from the boundary nodes of the inclusion
    x = rve.mesh.geometry.x[:, :2]
    centre = np.array([0.5, 0.5])
    radius = np.sqrt(0.4 / np.pi)
    on_circle = np.flatnonzero(np.abs(np.linalg.norm(x - centre, axis=1) - radius) < 1e-9)
    angles = np.sort(np.arctan2(*(x[on_circle] - centre).T[::-1]))
    gaps = np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi]))
    polygon = 0.5 * radius**2 * np.sum(np.sin(gaps))
    assert rve.fraction == pytest.approx(polygon, rel=1e-12)
    assert abs(rve.fraction / 0.4 - 1) > FRACTION_TOLERANCE
    assert "meshed inclusion fraction is 0.3987" in caplog.text


def test_matching_looks_at_every_candidate_of_a_bin():
    """Two candidates in one bin: the partner is found whichever of them sorts first."""
    from hmm_fenics.rve.periodic import _match

    query = np.array([[0.5, 0.5, 2e-7]])
    for candidates in ([[0.5, 0.5, 0.0], [0.5, 0.5, 2e-7]], [[0.5, 0.5, 2e-7], [0.5, 0.5, 0.0]]):
        c = np.array(candidates)
        index, distance = _match(query, c, np.zeros(3), 1.0, 1e-8)
        assert np.allclose(c[index[0]], query[0]) and distance[0] == 0.0


@pytest.mark.serial
def test_homogenize_starts_meshing_before_dolfinx_petsc_or_ufl_load(tmp_path):
    """The command line reads the cell file and starts gmsh on it (mesh_ahead) before the
    solver stack loads: MPI, DOLFINx, PETSc, UFL and the wheel's checks load while gmsh
    meshes."""
    (tmp_path / "cell.toml").write_text(DISK_CELL)
    script = textwrap.dedent(
        f"""
        import sys
        import hmm_fenics.cli as cli
        import hmm_fenics.rve.mesh as rve_mesh

        mesh_ahead = rve_mesh.mesh_ahead
        def recorded(spec):
            heavy = ("dolfinx", "petsc4py", "ufl", "dolfinx_solver", "mpi4py.MPI")
            print("loaded at mesh_ahead:", sorted(m for m in heavy if m in sys.modules))
            mesh_ahead(spec)
        rve_mesh.mesh_ahead = recorded
        print("code", cli.main(["homogenize", {str(tmp_path / "cell.toml")!r}, "-q"]))
        """
    )
    env = {**__import__("os").environ, "HMM_FENICS_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["loaded at mesh_ahead: []", "code 0"], run.stdout


def test_mesh_ahead_meshes_into_the_cache_that_build_rve_reads(tmp_path, monkeypatch):
    from hmm_fenics.rve import mesh as rve_mesh

    spec = hf.RVESpec("inclusion", 2, 0.4, 0.05)
    monkeypatch.setenv("HMM_FENICS_CACHE", str(tmp_path / "direct"))
    direct = hf.build_rve(spec)  # meshed and read back the usual way, without a thread
    monkeypatch.setenv("HMM_FENICS_CACHE", str(tmp_path / "ahead"))
    generate = rve_mesh.generate
    generated: list[str] = []

    def counted(s):
        generated.append(threading.current_thread().name)
        generate(s)

    merge = gmsh.merge
    merged: list[str] = []

    def read(path):
        merged.append(threading.current_thread().name)
        merge(path)

    monkeypatch.setattr(rve_mesh, "generate", counted)
    monkeypatch.setattr(gmsh, "merge", read)
    rve_mesh.mesh_ahead(spec)
    ahead = hf.build_rve(spec)  # waits for the thread, then takes the cells it read
    assert generated == ["hmm-fenics mesh_ahead"]  # the thread meshed; build_rve did not
    assert set(merged) == {"hmm-fenics mesh_ahead"}  # nor did it read the file again
    assert rve_mesh.cache_path(spec).is_file()
    np.testing.assert_array_equal(ahead.mesh.geometry.x, direct.mesh.geometry.x)
    np.testing.assert_array_equal(ahead.mesh.geometry.dofmaps[0], direct.mesh.geometry.dofmaps[0])
    np.testing.assert_array_equal(ahead.cell_tags.values, direct.cell_tags.values)
    assert ahead.fraction == direct.fraction
    again = hf.build_rve(spec)  # a second build reads the cache as usual
    np.testing.assert_array_equal(again.mesh.geometry.x, direct.mesh.geometry.x)


def test_a_failure_while_meshing_ahead_is_raised_by_build_rve(tmp_path, monkeypatch):
    from hmm_fenics.errors import InputError
    from hmm_fenics.rve import mesh as rve_mesh

    monkeypatch.setenv("HMM_FENICS_CACHE", str(tmp_path))
    calls: list[int] = []

    def broken(spec):
        calls.append(1)
        raise InputError("gmsh could not mesh this cell (injected)")

    monkeypatch.setattr(rve_mesh, "generate", broken)
    spec = hf.RVESpec("inclusion", 2, 0.4, 0.05)
    rve_mesh.mesh_ahead(spec)  # returns at once; the thread keeps its error
    with pytest.raises(InputError, match="injected"):
        hf.build_rve(spec)
    assert calls == [1]  # build_rve raised the thread's error instead of meshing again


def test_an_interrupt_while_mesh_ahead_hands_over_leaves_gmsh_usable(tmp_path, monkeypatch, capsys):
    """Ctrl-C while the caller loads MPI for the mesher: the thread ends quietly instead of
    waiting for its count for ever (holding gmsh), and the next build_rve meshes again."""
    from hmm_fenics.rve import mesh as rve_mesh

    monkeypatch.setenv("HMM_FENICS_CACHE", str(tmp_path))

    def interrupted() -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(rve_mesh, "surface_threads", interrupted)
    spec = hf.RVESpec("inclusion", 2, 0.4, 0.1)
    with pytest.raises(KeyboardInterrupt):
        rve_mesh.mesh_ahead(spec)
    built: list = []
    worker = threading.Thread(target=lambda: built.append(hf.build_rve(spec)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert built and not rve_mesh.meshing_ahead()  # no deadlock; meshed again
    assert "Exception in thread" not in capsys.readouterr().err  # nor a thread's traceback
    assert abs(built[0].fraction / 0.4 - 1) < FRACTION_TOLERANCE


def test_parallel_surface_meshing_gives_the_same_mesh(monkeypatch):
    """gmsh meshes the surfaces on this rank's share of the cores: same nodes and cells."""
    from hmm_fenics.rve import geometry

    with geometry.gmsh_session():  # the option the rule sets, on every session (windows, DNS)
        assert gmsh.option.getNumber("Mesh.MaxNumThreads2D") == geometry.surface_threads() >= 1
    asked: list[int] = []

    def three() -> int:
        asked.append(3)
        return 3

    with geometry.gmsh_session(threads=three):  # or the count given (mesh_ahead), when needed
        geometry.generate(hf.RVESpec("inclusion", 2, 0.4, 0.1))
        assert gmsh.option.getNumber("Mesh.MaxNumThreads2D") == 3
    assert asked == [3]  # asked once, for the surfaces: not for the curves fitted before
    meshes = []
    for threads in (1, 2):
        monkeypatch.setattr(geometry, "surface_threads", lambda threads=threads: threads)
        rve = hf.build_rve(hf.RVESpec("random", 2, 0.4, 0.05, count=8, seed=3), cache=False)
        meshes.append((rve.mesh.geometry.x, rve.mesh.geometry.dofmaps[0]))
    np.testing.assert_array_equal(meshes[0][0], meshes[1][0])
    np.testing.assert_array_equal(meshes[0][1], meshes[1][1])


@pytest.mark.serial
def test_an_interrupt_while_gmsh_meshes_ahead_exits_130_without_a_crash(tmp_path):
    """Ctrl-C before the cell is needed, while gmsh meshes it on its thread: a normal exit
    unloaded gmsh under the thread and crashed (SIGSEGV) about one run in two."""
    (tmp_path / "cell.toml").write_text(DISK_CELL.replace("mesh_size = 0.1", "mesh_size = 0.004"))
    script = textwrap.dedent(
        f"""
        import sys, time
        import hmm_fenics.cli as cli
        import hmm_fenics.rve.mesh as rve_mesh

        mesh_ahead = rve_mesh.mesh_ahead
        def interrupted(spec):
            mesh_ahead(spec)
            time.sleep(0.3)  # gmsh is meshing on its thread now
            assert rve_mesh.meshing_ahead()
            raise KeyboardInterrupt
        rve_mesh.mesh_ahead = interrupted
        print("leaving", flush=True)
        sys.argv = ["hmm-fenics", "homogenize", {str(tmp_path / "cell.toml")!r}, "-q"]
        cli.console()
        """
    )
    for k in range(6):  # without the fix, about one run in four of these crashed
        env = {**__import__("os").environ, "HMM_FENICS_CACHE": str(tmp_path / f"cache{k}")}
        run = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
        )
        assert run.returncode == 130, (run.returncode, run.stderr[-1500:])
        assert run.stdout == "leaving\n"


CONSOLE = """
import atexit, sys
import hmm_fenics.cli as cli
from mpi4py import MPI
from petsc4py import PETSc

class Witness:  # freed when the interpreter is torn down, which the console skips
    def __del__(self):
        print("torn down", flush=True)

def marked(finalize, name):
    def wrapper():
        sys.stdout.write(f"finalized {name}\\n")  # one write: ranks share the pipe
        sys.stdout.flush()
        finalize()
    return wrapper

witness = Witness()
atexit.register(print, "atexit ran")  # buffered: flushed by the console, not by the teardown
MPI.Finalize = marked(MPI.Finalize, "MPI")
PETSc._finalize = marked(PETSc._finalize, "PETSc")
sys.argv = ["hmm-fenics", *sys.argv[1:]]
cli.console()
"""


def _console(*args: str, ranks: int = 1, cwd=None) -> subprocess.CompletedProcess:
    """``hmm-fenics ARGS`` through ``cli.console`` (output to pipes), on ``ranks`` ranks."""
    import os
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_"))}
    command = [sys.executable, "-c", CONSOLE, *args]
    if ranks > 1:
        mpirun = Path(sys.executable).parent / "mpirun"
        command = [str(mpirun if mpirun.exists() else "mpirun"), "-n", str(ranks), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


@pytest.mark.serial
def test_the_console_ends_without_teardown_yet_flushes_what_c_and_fortran_buffered(tmp_path):
    """After a command the console leaves by C's exit, not through the interpreter's teardown
    (0.06-0.08 s of a one-second homogenize): the atexit handlers still run, and what PETSc
    (C) and MUMPS (Fortran) buffered for a pipe reaches it, as on a normal exit."""
    import json

    (tmp_path / "cell.toml").write_text(DISK_CELL)
    out = tmp_path / "out.json"
    run = _console(
        "homogenize", str(tmp_path / "cell.toml"), "--json", str(out), "-q",
        "-hmm_micro_ksp_view", "-hmm_micro_mat_mumps_icntl_4", "2",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "KSP Object: (hmm_micro_)" in run.stdout  # PETSc's viewer: C stdio
    # MUMPS's last words on its solve, from the Fortran runtime's buffer
    assert "Elapsed time in solve driver" in run.stdout
    # the handlers, then PETSc and MPI finalized in that order, and no teardown
    assert run.stdout.rstrip().endswith("atexit ran\nfinalized PETSc\nfinalized MPI")
    assert "torn down" not in run.stdout
    assert len(json.loads(out.read_text())["tensor"]) == 2
    bad = _console("homogenize", str(tmp_path / "missing.toml"))
    assert bad.returncode == 2 and "missing.toml" in bad.stderr
    assert _console("--help").returncode == 0
    assert _console("--no-such-option").returncode == 2


@pytest.mark.serial
def test_the_console_finalizes_mpi_under_mpirun(tmp_path):
    """Every rank finalizes PETSc, then MPI, before C's exit."""
    from mpi4py import MPI

    if MPI.COMM_WORLD.size > 1:  # an mpirun inside an MPI job would join it
        pytest.skip("starts its own mpirun")
    (tmp_path / "cell.toml").write_text(DISK_CELL)
    out = tmp_path / "out.json"
    run = _console("homogenize", str(tmp_path / "cell.toml"), "--json", str(out), ranks=2)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("atexit ran") == 2 and "torn down" not in run.stdout
    # every rank (this MPICH reports nothing for a rank that skips MPI_Finalize)
    assert run.stdout.count("finalized PETSc") == run.stdout.count("finalized MPI") == 2
    assert out.is_file()
