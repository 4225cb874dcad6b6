"""``hmm-fenics`` with planted failures, for tests/test_checkpoint.py (run as a script).

    python tests/checkpoint_runner.py [PLANT K ...] run CONFIG -o DIR ...

Plants (any number, each with a step K):

``--kill-after K``: every rank kills itself (SIGKILL, no clean-up) right after the
checkpoint of step K is complete, as a node failure would. ``--kill-writing K``: rank 0
kills itself halfway through writing its first state file of step K's checkpoint.
``--kill-at K``: every rank kills itself at the end of step K, before any checkpoint of it.
``--signal-writing K``: rank 0 sends itself SIGTERM as step K's checkpoint starts being
written (the signal arrives during the write). ``--fail-writing K``: from step K on, the
last rank's first slice of every checkpoint fails with ENOSPC (a full disk) after half of
its bytes.
"""

import errno
import os
import signal
import sys

import hmm_fenics  # noqa: F401  (before dolfinx: the wheel's libmpi)
from hmm_fenics.cli import main
from hmm_fenics.run import checkpoint, restart


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _step_of(path) -> int:  # type: ignore[no-untyped-def]
    """The step a checkpoint file belongs to (from its folder ``.step_000012.tmp``)."""
    return int(path.parent.name.split("_")[1].split(".")[0])


def kill_after(step: int) -> None:
    write = restart.Checkpointer.write

    def write_then_die(self, increment):  # type: ignore[no-untyped-def]
        folder = write(self, increment)
        if increment.step == step:
            _kill()
        return folder

    restart.Checkpointer.write = write_then_die  # type: ignore[method-assign]


def kill_writing(step: int) -> None:
    write_array = checkpoint._write_array

    def write_half(path, array):  # type: ignore[no-untyped-def]
        from mpi4py import MPI

        if _step_of(path) == step and MPI.COMM_WORLD.rank == 0:
            if path.name.startswith("states."):
                with open(path, "wb") as file:
                    file.write(array.tobytes()[: array.nbytes // 2])
                    file.flush()
                _kill()
        return write_array(path, array)

    checkpoint._write_array = write_half


def kill_at(step: int) -> None:
    call = restart.Checkpointer.__call__

    def die_at(self, increment):  # type: ignore[no-untyped-def]
        if increment.step == step:
            _kill()
        return call(self, increment)

    restart.Checkpointer.__call__ = die_at  # type: ignore[method-assign]


def signal_writing(step: int) -> None:
    write = checkpoint.write

    def write_signalled(comm, output, at, *args, **kwargs):  # type: ignore[no-untyped-def]
        if at == step and comm.rank == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # handled now: the flag is set mid-write
        return write(comm, output, at, *args, **kwargs)

    checkpoint.write = write_signalled


def fail_writing(step: int) -> None:
    write_array = checkpoint._write_array

    def write_full_disk(path, array):  # type: ignore[no-untyped-def]
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        if _step_of(path) >= step and comm.rank == comm.size - 1:
            with open(path, "wb") as file:
                file.write(array.tobytes()[: array.nbytes // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write_array(path, array)

    checkpoint._write_array = write_full_disk


PLANTS = {
    "--kill-after": kill_after,
    "--kill-writing": kill_writing,
    "--kill-at": kill_at,
    "--signal-writing": signal_writing,
    "--fail-writing": fail_writing,
}


def plant(argv: list[str]) -> list[str]:
    while argv[:1] and argv[0] in PLANTS:
        PLANTS[argv[0]](int(argv[1]))
        argv = argv[2:]
    return argv


if __name__ == "__main__":
    sys.exit(main(plant(sys.argv[1:])))
