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


@contextlib.contextmanager
def prefixed_options(prefix: str, options: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, ``prefix + key = value`` is set for every option not given already.

    Call ``setFromOptions`` (and ``setUp``, which reads factorization options) inside it.
    """
    from petsc4py import PETSc

    database = PETSc.Options()
    ours = [prefix + key for key in options if prefix + key not in database]
    for key in ours:
        database[key] = options[key.removeprefix(prefix)]
    try:
        yield
    finally:
        for key in ours:
            database.delValue(key)
