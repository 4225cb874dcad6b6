"""Checkpoint size and speed against the raw bytes of the micro states and the disk (issue 12).

A J2 history FE² state (macro rectangle, plane-strain cell with a J2 matrix) is filled with
random committed states (the checkpoint writes bytes as they are, no compression: values do
not change its size or speed) and then:

1. size: the checkpoint folder's bytes per macro point against the raw bytes of one state
   row (8 × state width), target ≤ 1.1;
2. write: ``Checkpointer``'s work (states to their owners, every rank's slices with SHA-256,
   fsync, manifest, rename) against writing the same bytes per rank with plain ``write`` +
   fsync, measured in the same run on the same folder (the disk's streaming speed);
3. read: ``restore_state`` on the same partition (each rank's own slices verified and its
   rows put in place) against plain reads of the same bytes. (On another number of ranks a
   rank reads the slices until it has its rows: up to every slice, P × the bytes.)

The read side is measured from the disk, not from the page cache: before each read every
file read is fsynced and dropped from the cache (``os.posix_fadvise(POSIX_FADV_DONTNEED)``
after ``fsync``, on every rank), so the restore and the plain read both fetch their bytes
from the device (a kernel that ignores the advice measures both from memory alike). Run on
a quiet machine; the ratios are the result.

    OMP_NUM_THREADS=1 [mpirun -n P] python bench/bench_checkpoint.py [--macro-size 0.05]
        [--micro-size 0.1] [--dir /tmp/hmm_bench_checkpoint] [--json out.json]
"""

import argparse
import json
import os
import shutil
import time
from pathlib import Path

# isort: off
import hmm_fenics as hf  # first: it loads the DOLFINx wheel's MPI before dolfinx is imported
# isort: on

from mpi4py import MPI

import numpy as np

from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.materials import J2Plastic
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.run import checkpoint as files
from hmm_fenics.run.identity import identity
from hmm_fenics.run.restart import gather_state, restore_state


def timed(comm, work):
    """Wall time of collective ``work`` (max over ranks, barrier before)."""
    comm.barrier()
    start = time.perf_counter()
    result = work()
    comm.barrier()
    return comm.allreduce(time.perf_counter() - start, op=MPI.MAX), result


def raw_write(path: Path, data: np.ndarray) -> None:
    with open(path, "wb") as file:
        file.write(memoryview(data).cast("B"))
        file.flush()
        os.fsync(file.fileno())


def drop_cache(path: Path) -> None:
    """Flush ``path`` to the disk and drop its pages from the page cache (a cold read next)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macro-size", type=float, default=0.05, help="macro mesh size")
    parser.add_argument("--micro-size", type=float, default=0.1, help="micro mesh size")
    parser.add_argument("--dir", default="/tmp/hmm_bench_checkpoint", help="where to write")
    parser.add_argument("--json")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    physics = hf.Elasticity(2, "strain")
    materials = {
        "matrix": J2Plastic(E=3.0, nu=0.35, sigma_y=0.03, H_iso=0.3),
        "inclusion": hf.IsotropicElastic(E=70.0, nu=0.2),
    }
    cell = history_cell_problem(
        physics, hf.build_rve(hf.RVESpec("inclusion", 2, 0.2, args.micro_size)), materials
    )
    mesh = macro_mesh("rectangle", args.macro_size, comm)
    problem = MacroProblem(mesh, physics, {"left": (0.0, 0.0)})
    q = problem.quadrature
    model = HistoryCellModel(cell)
    width = model.state_width()
    rng = np.random.default_rng(comm.rank)
    model.set_state_rows(rng.standard_normal((q.n_points, width)))
    n = physics.n_components
    q.store(rng.standard_normal((q.n_points, n)), rng.standard_normal((q.n_points, n, n)))
    points = comm.allreduce(q.n_points, op=MPI.SUM)
    output = Path(comm.bcast(args.dir, root=0)) / f"ranks_{comm.size}"
    if comm.rank == 0:
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
    comm.barrier()

    def write():
        meta = {"identity": identity(problem, cell)}
        return files.write(comm, output, 1, gather_state(problem, model), "bench", meta)

    write_seconds, folder = timed(comm, write)
    size = comm.bcast(
        sum(p.stat().st_size for p in folder.iterdir()) if comm.rank == 0 else None, root=0
    )
    raw_bytes = points * width * 8
    local_bytes = gather_state(problem, model)
    block = np.concatenate([a.ravel().view(np.uint8) for a in local_bytes.values()])
    raw_path = output / f"raw.{comm.rank}.bin"
    disk_write, _ = timed(comm, lambda: raw_write(raw_path, block))
    total = comm.allreduce(block.nbytes, op=MPI.SUM)
    found = comm.bcast(files.latest(output)[0] if comm.rank == 0 else None, root=0)
    for path in sorted(folder.iterdir()):  # every rank: its own slices and the shared files
        drop_cache(path)
    read_seconds, _ = timed(comm, lambda: restore_state(found, problem, model, cell))

    def raw_read():  # its own bytes, as a restore on the same partition reads its own slice
        return len(raw_path.read_bytes())

    drop_cache(raw_path)
    disk_read, _ = timed(comm, raw_read)
    row = {
        "ranks": comm.size,
        "macro_points": points,
        "state_width": width,
        "checkpoint_bytes": size,
        "raw_state_bytes": raw_bytes,
        "bytes_per_point": size / points,
        "raw_bytes_per_point": 8 * width,
        "size_ratio": size / raw_bytes,
        "write_seconds": write_seconds,
        "disk_write_seconds": disk_write,
        "write_ratio": write_seconds / disk_write,
        "disk_write_MBps": total / disk_write / 1e6,
        "read_seconds": read_seconds,
        "disk_read_seconds": disk_read,
        "read_ratio": read_seconds / disk_read,
        "disk_read_MBps": total / disk_read / 1e6,
    }
    if comm.rank == 0:
        print(json.dumps(row, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(row, indent=2) + "\n")
        shutil.rmtree(output, ignore_errors=True)


if __name__ == "__main__":
    main()
