"""A failure on one rank is raised on every rank, with its class, never a hang (issue 10.1).

Each test injects a failure on one rank into rank-local work that precedes a collective and
checks that every rank raises the same error (or exits with the same code). Under
``mpirun -n 2`` the failure crosses ranks; the ``serial`` tests spawn 2- and 3-rank jobs with
a timeout, so that a regression shows as a failed test instead of a hung suite.
"""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
from test_run import ELASTIC, run

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.coupling.micro_models import BalancedModel, EffectiveModel
from hmm_fenics.errors import InputError, MicroFailure, point_label
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.parallel.collective import agree
from hmm_fenics.solver import solve

LAST = MPI.COMM_WORLD.size - 1


class FailsOnLastRank:
    """Injected failure: the last rank's micro model raises at its ``call``-th call.

    The error names the first point of the batch as the micro models do: by its global
    index and coordinates.
    """

    def __init__(self, inner, call=1):
        self.inner, self.call, self.calls = inner, call, 0

    def respond(self, gradients, points, ids=None):
        self.calls += 1
        if MPI.COMM_WORLD.rank == LAST and self.calls == self.call and len(points):
            error = MicroFailure(f"injected failure at {point_label(0, points, ids)}")
            error.point = 0
            raise error
        return self.inner.respond(gradients, points, ids)


def test_agree_returns_the_work_or_raises_one_ranks_failure_everywhere_with_its_class():
    comm = MPI.COMM_WORLD
    assert agree(comm, lambda: comm.rank) == comm.rank

    def bad_input():
        if comm.rank == LAST:
            raise InputError("bad key")

    with pytest.raises(InputError) as info:
        agree(comm, bad_input)
    assert str(info.value) == "bad key"  # where an input error was found does not matter
    assert comm.allgather(str(info.value)) == ["bad key"] * comm.size

    def micro():
        if comm.rank == LAST:
            raise MicroFailure("singular")

    with pytest.raises(MicroFailure, match=rf"^rank {LAST}: singular$"):
        agree(comm, micro)


def test_an_agreed_failure_passes_a_nested_agree_without_a_collective():
    comm = MPI.COMM_WORLD

    def inner():
        if comm.rank == LAST:
            raise MicroFailure("deep")

    with pytest.raises(MicroFailure, match=rf"^rank {LAST}: deep$"):
        agree(comm, lambda: agree(comm, inner))  # one allgather only, or ranks would mismatch


def test_a_class_that_cannot_travel_keeps_its_kind():
    comm = MPI.COMM_WORLD

    class Local(InputError):  # a local class does not pickle: the nearest kind travels
        pass

    def fail():
        if comm.rank == LAST:
            raise Local("odd")

    with pytest.raises(InputError, match="Local: odd"):
        agree(comm, fail)


def test_exits_odd_messages_and_key_errors_are_agreed_too():
    comm = MPI.COMM_WORLD

    def leave():
        if comm.rank == LAST:
            raise SystemExit(3)

    expected = SystemExit if comm.rank == LAST else RuntimeError  # the exit stays an exit
    with pytest.raises(expected):
        agree(comm, leave)

    class Unprintable(Exception):
        def __str__(self):
            raise ValueError("no")

    def odd():
        if comm.rank == LAST:
            raise Unprintable()

    with pytest.raises(RuntimeError, match="unprintable Unprintable"):
        agree(comm, odd)

    def missing():
        if comm.rank == LAST:
            raise KeyError("phase")

    with pytest.raises(KeyError) as info:
        agree(comm, missing)
    assert info.value.args[0] == f"rank {LAST}: phase"


def test_balanced_model_failure_on_one_rank_at_its_second_call_is_raised_everywhere():
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(comm.rank)
    n = 6 + 3 * comm.rank  # uneven, so that points move
    gradients, points = rng.standard_normal((n, 2)), rng.random((n, 2))
    ids = np.arange(n) + 100 * comm.rank
    model = BalancedModel(FailsOnLastRank(EffectiveModel(np.eye(2)), call=2), comm)
    first = model.respond(gradients, points, ids)
    np.testing.assert_allclose(first.flux, gradients)
    with pytest.raises(MicroFailure, match=rf"^rank {LAST}: injected failure at macro point \d+"):
        model.respond(gradients, points, ids)


def test_fe2_failure_names_iteration_rank_and_the_global_point_with_its_coordinates():
    comm = MPI.COMM_WORLD
    problem = MacroProblem(
        macro_mesh("rectangle", 0.25), hf.Diffusion(2), {"left": 0.0, "right": 1.0}
    )
    model = BalancedModel(FailsOnLastRank(EffectiveModel(np.eye(2))), comm)
    with pytest.raises(MicroFailure) as info:
        solve(problem, model, progress=False)
    message = str(info.value)
    assert comm.allgather(message) == [message] * comm.size
    found = re.match(
        rf"macro Newton iteration 0: rank {LAST}: injected failure at macro point (\d+) "
        r"\(global index\) at x = \(([^)]*)\)",
        message,
    )
    assert found, message
    named_id = int(found.group(1))
    named_x = np.array([float(c) for c in found.group(2).split(",")])
    # the owner's point of that global index is at the named coordinates (the index
    # travelled with the point through the balanced exchange) ...
    q = problem.quadrature
    owned = dict(zip(q.global_ids().tolist(), q.coordinates()[:, :2].tolist(), strict=True))
    everywhere = {k: v for part in comm.allgather(owned) for k, v in part.items()}
    np.testing.assert_allclose(everywhere[named_id], named_x, rtol=1e-5, atol=1e-6)
    # ... and global indices are those of the serial mesh: the same points on one rank
    serial = MacroProblem(
        macro_mesh("rectangle", 0.25, MPI.COMM_SELF), hf.Diffusion(2), {"left": 0.0}
    ).quadrature
    alone = dict(zip(serial.global_ids().tolist(), serial.coordinates()[:, :2], strict=True))
    assert sorted(alone) == sorted(everywhere)
    for k, x in alone.items():
        np.testing.assert_allclose(everywhere[k], x, atol=1e-12)


def test_unreadable_macro_mesh_is_an_input_error_on_every_rank(tmp_path):
    comm = MPI.COMM_WORLD
    path = comm.bcast(tmp_path / "corrupt.msh", root=0)
    if comm.rank == 0:
        path.write_text("$MeshFormat\n4.1 0 8\n$EndMeshFormat\n$Nodes\ngarbage\n")
    comm.barrier()
    with pytest.raises(InputError, match=r"macro.path: gmsh cannot read .*corrupt.msh"):
        macro_mesh("file", 0.1, comm, path=str(path))


def test_snapshot_failure_on_its_owner_exits_1_on_every_rank(tmp_path, monkeypatch, capsys):
    import hmm_fenics.run.snapshots

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(hmm_fenics.run.snapshots, "write_micro_snapshot", broken)
    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    code, _ = run(folder, ELASTIC.format(steps=1), "--quiet")
    assert code == 1
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert "failed: OSError: rank " in err and "disk full" in err


def test_rve_check_failure_on_rank_0_exits_2_on_every_rank(tmp_path, monkeypatch, capsys):
    import hmm_fenics.io

    def refused(*args, **kwargs):
        raise InputError("the cell does not percolate")

    monkeypatch.setattr(hmm_fenics.io, "preview_rve", refused)  # what `rve` runs on rank 0
    out = MPI.COMM_WORLD.bcast(tmp_path, root=0) / "cell.msh"
    assert main(["rve", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert err.count("hmm-fenics: error: the cell does not percolate") == 1


def test_cell_meshing_failure_on_one_rank_exits_2_on_every_rank(tmp_path, monkeypatch, capsys):
    """homogenize meshes its cell on a thread of every rank (mesh_ahead) while DOLFINx loads:
    a failure there, on one rank only, reaches build_rve inside agree and stops every rank."""
    import hmm_fenics.rve.mesh as rve_mesh

    generate = rve_mesh.generate

    def fails_on_last_rank(spec):
        if MPI.COMM_WORLD.rank == LAST:
            raise InputError("gmsh could not mesh this cell (injected)")
        generate(spec)

    monkeypatch.setattr(rve_mesh, "generate", fails_on_last_rank)
    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    # a cache per rank: the failing rank must not find the file another rank wrote
    monkeypatch.setenv("HMM_FENICS_CACHE", str(folder / f"cache-{MPI.COMM_WORLD.rank}"))
    cell = folder / "cell.toml"
    if MPI.COMM_WORLD.rank == 0:
        cell.write_text(
            '[rve]\nkind = "inclusion"\ndim = 2\nfraction = 0.4\nmesh_size = 0.1\n'
            '[physics]\nkind = "diffusion"\n[materials.matrix]\nk = 1.0\n'
            "[materials.inclusion]\nk = 10.0\n"
        )
    MPI.COMM_WORLD.barrier()
    assert main(["homogenize", str(cell), "-q"]) == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert err.count("gmsh could not mesh this cell (injected)") == 1, err


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [2, 3])
def test_balanced_failure_under_mpirun_ends_within_seconds(tmp_path, ranks):
    script = tmp_path / "fail.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_collective import (
            test_balanced_model_failure_on_one_rank_at_its_second_call_is_raised_everywhere as t,
        )
        t()
        print("raised on every rank")
    """)
    )
    mpirun = Path(sys.executable).parent / "mpirun"
    proc = subprocess.run(
        [
            str(mpirun if mpirun.exists() else "mpirun"),
            "-n",
            str(ranks),
            sys.executable,
            "-m",
            "mpi4py",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("raised on every rank") == ranks


def test_dns_meshing_failure_on_rank_0_is_raised_everywhere(monkeypatch):
    import hmm_fenics.dns

    def broken(*args):
        raise RuntimeError("mesher failed")

    monkeypatch.setattr(hmm_fenics.dns, "disk_polygon", broken)  # runs on rank 0 only
    with pytest.raises(RuntimeError, match=r"^rank 0: mesher failed$"):
        hmm_fenics.dns.periodic_medium(0.5, 0.3)


def test_boundary_on_cells_outside_the_domain_is_an_input_error_not_an_abort(tmp_path):
    """DOLFINx drops cells outside the domain group and aborted on the boundary facets."""
    import gmsh

    comm = MPI.COMM_WORLD
    path = comm.bcast(tmp_path / "two.msh", root=0)
    if comm.rank == 0:
        gmsh.initialize()
        gmsh.option.setNumber("General.Terminal", 0)
        occ = gmsh.model.occ
        left, right = occ.addRectangle(0, 0, 0, 1, 1), occ.addRectangle(1, 0, 0, 1, 1)
        occ.fragment([(2, left)], [(2, right)])
        occ.synchronize()
        gmsh.model.addPhysicalGroup(2, [left], name="domain")  # the right square is untagged
        right_edge = [
            c for _, c in gmsh.model.getEntities(1) if gmsh.model.getBoundingBox(1, c)[0] > 2 - 1e-6
        ]
        gmsh.model.addPhysicalGroup(1, right_edge, name="right")
        gmsh.model.mesh.generate(2)
        gmsh.write(str(path))
        gmsh.finalize()
    comm.barrier()
    with pytest.raises(InputError, match=r"boundary group\(s\) \['right'\] lie on cells outside"):
        macro_mesh("file", 0.1, comm, path=str(path))


def test_geometry_gmsh_cannot_build_is_an_input_error():
    with pytest.raises(InputError, match=r"macro.geometry = 'plate-with-hole': gmsh cannot build"):
        macro_mesh("plate-with-hole", 0.2, params={"L": 1.0, "R": 1e-12})
