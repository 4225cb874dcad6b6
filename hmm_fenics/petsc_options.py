# petsc4py's stubs do not declare the mapping interface of Options that it has at run time.
# mypy: disable-error-code="index, operator"
"""PETSc options under a prefix, present in the global database only while a solver is set up.

Solvers take plain dicts (``hmm_micro_``/``hmm_macro_`` prefixes, as DOLFINx's
``petsc_options_prefix``); options already in the database (the command line) win, and ours
are removed afterwards so that they cannot leak into the next solver.
"""

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from hmm_fenics.errors import InputError

PETSC_ERR_UNKNOWN_TYPE = 86  # PETSc's error code for a misspelled solver type
PETSC_ERR_MISSING_FACTOR = 92  # ... and for a factorization package it does not have
INPUT_ERROR_CODES = (PETSC_ERR_UNKNOWN_TYPE, PETSC_ERR_MISSING_FACTOR)
"""PETSc error codes that mean misspelled solver options, not a failed solve."""


@contextlib.contextmanager
def prefixed_options(prefix: str, options: Mapping[str, Any], solver: str = "") -> Iterator[None]:
    """Within the block, ``prefix + key = value`` is set for every option not given already.

    Call ``setFromOptions`` (and ``setUp``, which reads factorization options) inside it. A
    misspelled solver type raised there becomes an ``InputError`` naming the ``solver``.
    """
    from petsc4py import PETSc

    database = PETSc.Options()
    ours = [prefix + key for key in options if prefix + key not in database]
    for key in ours:
        database[key] = options[key.removeprefix(prefix)]
    try:
        yield
    except PETSc.Error as err:
        if getattr(err, "ierr", None) in INPUT_ERROR_CODES:
            effective = {  # the command line's and ours
                key.removeprefix(prefix): value
                for key, value in database.getAll().items()
                if key.startswith(prefix)
            }
            raise InputError(
                f"unknown PETSc type in the {solver} solver options {effective}; check the "
                "spelling of ksp_type / pc_type / pc_factor_mat_solver_type."
            ) from err
        raise
    finally:
        for key in ours:
            database.delValue(key)


def merge_solver_options(defaults: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """User options over the defaults, without leftovers of the other kind of solver.

    A direct ``pc_type`` (lu, cholesky) implies ``ksp_type = preonly`` and MUMPS unless
    given; an iterative one implies CG and rtol 1e-7 unless given, and no factorization.
    """
    options = defaults | user
    direct = options["pc_type"] in ("lu", "cholesky")
    if direct:
        options.setdefault("pc_factor_mat_solver_type", "mumps")
        if "ksp_type" not in user:
            options["ksp_type"] = "preonly"
    else:
        if "pc_factor_mat_solver_type" not in user:
            options.pop("pc_factor_mat_solver_type", None)
        if "ksp_type" not in user and options["ksp_type"] == "preonly":
            options["ksp_type"] = "cg"
        options.setdefault("ksp_rtol", 1e-7)  # effective tensors to ~1e-14, see above
    return options


COMMAND_LINE_PREFIXES = ("hmm_macro_", "hmm_micro_")
PETSC_HELP = (
    "PETSc options go anywhere on the line, with the prefix of their solver: "
    "-hmm_micro_<option> (every micro solve) or -hmm_macro_<option> (the macro solver), e.g. "
    "-hmm_micro_pc_type lu; they win over the run file's [petsc] and [solver] tables."
)


def split_command_line(argv: Sequence[str]) -> tuple[list[str], dict[str, str | None]]:
    """Separate PETSc options (``-name [value]``, one dash) from the other arguments.

    A token with one dash and an underscore in its name (``-hmm_micro_pc_type``,
    ``-ksp_type``) is a PETSc option; the next token is its value unless it starts with a
    dash and is not a number (``-hmm_micro_ksp_monitor`` takes none). Long options
    (``--output``) and short flags (``-o``, ``-vq``) are left to argparse.

    Returns:
        The remaining arguments, and option name (without the dash) → value or ``None``.

    Raises:
        InputError: an option without the ``hmm_macro_``/``hmm_micro_`` prefix.
    """
    rest: list[str] = []
    options: dict[str, str | None] = {}
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name = token[1:]
        if token.startswith("--") or not token.startswith("-") or "_" not in name:
            rest.append(token)  # an argument, a long option or short flags (-vq)
            i += 1
            continue
        if not name.startswith(COMMAND_LINE_PREFIXES) or name in COMMAND_LINE_PREFIXES:
            bare = name.removeprefix("hmm_")
            raise InputError(
                f"PETSc option {token!r} has no solver prefix: write -hmm_micro_{bare} (every "
                f"micro solve) or -hmm_macro_{bare} (the macro solver)."
            )
        value = tokens[i + 1] if i + 1 < len(tokens) else None
        if value is not None and (not value.startswith("-") or _is_number(value)):
            options[name] = value
            i += 2
        else:
            options[name] = None
            i += 1
    return rest, options


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def command_line_options(options: Mapping[str, str | None], comm: Any) -> Iterator[None]:
    """Within the block, ``options`` (from :func:`split_command_line`) are in PETSc's database.

    They win over run-file and default options (see :func:`prefixed_options`) and are
    removed afterwards. If the block completes, an option that no solver on any rank read
    (a misspelled name, or an option for a solver the job does not have) is an error: PETSc
    reports it as used only when a solver asked for it. Collective on ``comm``.

    Raises:
        InputError: a command-line option that no solver read.
    """
    if not options:  # nothing to set or check: PETSc need not be loaded for it
        yield
        return
    from petsc4py import PETSc

    database = PETSc.Options()
    ours = [name for name in options if name not in database]
    for name in ours:
        database.setValue(name, options[name])
    try:
        yield
        from mpi4py import MPI

        used = [int(database.used(name)) for name in ours]
        readers = comm.allreduce(np.array(used, dtype=np.int64), op=MPI.SUM) if ours else []
        unused = [f"-{name}" for name, n in zip(ours, readers, strict=True) if n == 0]
        if unused:
            raise InputError(
                f"PETSc option(s) {unused} were never read by a solver (misspelled, for a "
                "solver this job does not have, or one a direct solve ignores, such as a "
                "ksp tolerance with the default LU/Cholesky); the job ran without them. Check the names "
                "(PETSc's manual pages list each solver's options) or remove them."
            )
    finally:
        for name in ours:
            database.delValue(name)
