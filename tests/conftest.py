"""Shared fixtures and reference formulas (from ../shared/references.md) for the tests."""

import sys

import numpy as np
import pytest

import hmm_fenics as hf

GLASS = hf.IsotropicElastic(E=70.0, nu=0.2)
EPOXY = hf.IsotropicElastic(E=3.0, nu=0.35)
K_MATRIX, K_INCLUSION = 1.0, 10.0


def conductivities(k1: float = K_MATRIX, k2: float = K_INCLUSION) -> dict[str, hf.Conductivity]:
    return {"matrix": hf.Conductivity(k1), "inclusion": hf.Conductivity(k2)}


def glass_epoxy() -> dict[str, hf.IsotropicElastic]:
    return {"matrix": EPOXY, "inclusion": GLASS}


def physics_for(kind: str, dim: int) -> hf.Diffusion | hf.Elasticity:
    return hf.Diffusion(dim) if kind == "diffusion" else hf.Elasticity(dim)


def materials_for(kind: str) -> dict:
    return conductivities() if kind == "diffusion" else glass_epoxy()


def hashin_shtrikman(k1: float, k2: float, f: float, d: int) -> tuple[float, float]:
    """HS bounds for the conductivity of an isotropic two-phase medium, k2 > k1."""
    lower = k1 + f / (1 / (k2 - k1) + (1 - f) / (d * k1))
    upper = k2 + (1 - f) / (1 / (k1 - k2) + f / (d * k2))
    return lower, upper


def relative(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def cli_error(capsys) -> str:
    """What a CLI call printed on stderr: rank 0's message, on every rank.

    Under mpirun a failure that every rank meets is reported by rank 0 alone.
    """
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    err = capsys.readouterr().err
    if comm.rank != 0:
        assert err == "", f"rank {comm.rank} printed {err!r}"
    return comm.bcast(err, root=0)


def strip_mesh(path) -> None:
    """Write a 2 × 0.5 strip with boundaries "inlet" (x = 0) and "outlet" (x = 2) to ``path``."""
    import gmsh

    from hmm_fenics.rve.geometry import gmsh_session

    with gmsh_session():
        tag = gmsh.model.occ.addRectangle(0, 0, 0, 2.0, 0.5)
        gmsh.model.occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [tag], 1, name="strip")
        ends = {}
        for _, t in gmsh.model.getEntities(1):
            x0, _, _, x1, _, _ = gmsh.model.getBoundingBox(1, t)
            if abs(x1 - x0) < 1e-5:
                ends[round(x0, 3)] = t
        gmsh.model.addPhysicalGroup(1, [ends[0.0]], 1, name="inlet")
        gmsh.model.addPhysicalGroup(1, [ends[2.0]], 2, name="outlet")
        gmsh.option.setNumber("Mesh.MeshSizeMax", 0.1)
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Under mpirun, rank 0 alone prints the session; another rank prints only its failures.

    The terminal reporter of ranks ≠ 0 is replaced by printing their failures (with the
    rank), so the MPI pass prints one report, while a test that fails on rank 1 only is
    still shown and still fails the run (pytest's exit code does not depend on the
    reporter). At the end every rank's failure count goes to rank 0, whose summary says
    "FAILED on rank r: k test(s)" and whose exit status is then a failure too.
    """
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.rank
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    quiet = rank != 0 and reporter is not None
    if quiet:
        config.pluginmanager.unregister(reporter)
    config.pluginmanager.register(_RankFailures(MPI.COMM_WORLD, show=quiet), "rank-failures")


class _RankFailures:
    """Counts one rank's failed tests and collection errors; rank 0 reports the others'.

    Args:
        comm: The communicator of the pytest processes (every rank registers this plugin).
        show: Print each failure to stderr with the rank (ranks ≠ 0, whose reporter is off).
    """

    def __init__(self, comm, show: bool):
        self.comm, self.rank, self.show = comm, comm.rank, show
        self.failed = 0
        self.others: list[tuple[int, int]] = []

    def _show(self, report) -> None:
        if report.failed:
            self.failed += 1
            if self.show:
                print(
                    f"\n[rank {self.rank}] FAILED {report.nodeid} ({report.when})\n"
                    f"{report.longreprtext}",
                    file=sys.stderr,
                    flush=True,
                )

    def pytest_runtest_logreport(self, report) -> None:
        self._show(report)

    def pytest_collectreport(self, report) -> None:
        self._show(report)

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        # before the reporter's summary (it prints after this hook): every rank calls it once
        counts = self.comm.gather(self.failed, root=0)
        if self.show and self.failed:
            print(f"[rank {self.rank}] {self.failed} failure(s)", file=sys.stderr, flush=True)
        if self.rank == 0:
            self.others = [(r, k) for r, k in enumerate(counts) if r != 0 and k]
            if self.others and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for rank, count in self.others:
            terminalreporter.write_line(f"FAILED on rank {rank}: {count} test(s)", red=True)

    def pytest_unconfigure(self, config) -> None:
        # after rank 0's summary: a rank that failed exits non-zero, and ``python -m mpi4py``
        # then aborts every rank, which must not cut rank 0's report short
        self.comm.barrier()
