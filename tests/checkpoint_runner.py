"""``hmm-fenics`` with a planted SIGKILL, for tests/test_checkpoint.py (run as a script).

    python tests/checkpoint_runner.py [--kill-after K | --kill-writing K] run CONFIG -o DIR ...

``--kill-after K``: every rank kills itself (SIGKILL, no clean-up) right after the
checkpoint of step K is complete, as a node failure would. ``--kill-writing K``: rank 0
kills itself halfway through writing its first state file of step K's checkpoint.
"""

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


def plant(argv: list[str]) -> list[str]:
    if argv[:1] == ["--kill-after"]:
        step = int(argv[1])
        write = restart.Checkpointer.write

        def write_then_die(self, increment):  # type: ignore[no-untyped-def]
            folder = write(self, increment)
            if increment.step == step:
                _kill()
            return folder

        restart.Checkpointer.write = write_then_die  # type: ignore[method-assign]
        return argv[2:]
    if argv[:1] == ["--kill-writing"]:
        step = int(argv[1])
        write_array = checkpoint._write_array

        def write_half(path, array):  # type: ignore[no-untyped-def]
            from mpi4py import MPI

            if f"step_{step:06d}" in str(path) and MPI.COMM_WORLD.rank == 0:
                if path.name.startswith("states."):
                    with open(path, "wb") as file:
                        file.write(array.tobytes()[: array.nbytes // 2])
                        file.flush()
                    _kill()
            return write_array(path, array)

        checkpoint._write_array = write_half
        return argv[2:]
    return argv


if __name__ == "__main__":
    sys.exit(main(plant(sys.argv[1:])))
