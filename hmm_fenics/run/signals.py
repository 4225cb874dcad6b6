"""SIGTERM (a batch system's walltime) and SIGINT (Ctrl-C) stop a run at the end of a step.

While a :class:`StopRequests` is installed, the first SIGTERM or SIGINT only raises a flag;
the time stepping looks at it after each converged step (agreed over all ranks), writes a
checkpoint and ends the run with :class:`Stopped` (exit 143 or 130). A second SIGINT aborts
at once (exit 130, no checkpoint), for a run that does not reach the end of its step.
"""

import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

EXIT_CODES = {int(signal.SIGTERM): 143, int(signal.SIGINT): 130}
"""Exit code of a run stopped by each signal (128 + the signal number, as a shell reports)."""


class Stopped(Exception):
    """The run stopped at the end of a step on a signal, after writing a checkpoint.

    Attributes:
        signal: The signal number.
        code: The exit code (143 for SIGTERM, 130 for SIGINT).
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signal, self.code = signum, EXIT_CODES.get(signum, 128 + signum)


def signal_name(signum: int) -> str:
    """``SIGTERM``, ``SIGINT``, ..."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopRequests:
    """A context that turns SIGTERM/SIGINT into a stop request (main thread only).

    Attributes:
        received: The first signal received (None: none yet).
    """

    def __init__(self, announce: bool = True) -> None:
        self.received: int | None = None
        self.announce = announce
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is not threading.main_thread():
            return self  # handlers can be set in the main thread only: signals not watched
        for signum in EXIT_CODES:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            sys.stderr.write("hmm-fenics: second SIGINT: aborting at once (no checkpoint).\n")
            sys.stderr.flush()
            os._exit(EXIT_CODES[signal.SIGINT])
        if self.received is None:
            self.received = signum
            if self.announce:
                sys.stderr.write(
                    f"hmm-fenics: {signal_name(signum)} received: stopping at the end of the "
                    "current step with a checkpoint"
                    + (" (Ctrl-C again aborts at once).\n" if signum == signal.SIGINT else ".\n")
                )
                sys.stderr.flush()
