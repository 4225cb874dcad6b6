# petsc4py's stubs do not declare the mapping interface of Options that it has at run time.
# mypy: disable-error-code="index, operator"
"""PETSc options under a prefix, present in the global database only while a solver is set up.

Solvers take plain dicts (``hmm_micro_``/``hmm_macro_`` prefixes, as DOLFINx's
``petsc_options_prefix``); options already in the database (the command line) win, and ours
are removed afterwards so that they cannot leak into the next solver.
"""

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from hmm_fenics.errors import InputError

PETSC_ERR_UNKNOWN_TYPE = 86  # PETSc's error code for a misspelled solver type


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
        if getattr(err, "ierr", None) == PETSC_ERR_UNKNOWN_TYPE:
            raise InputError(
                f"unknown PETSc type in the {solver} solver options {dict(options)}; check the "
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
