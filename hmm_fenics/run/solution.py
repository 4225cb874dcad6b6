"""The macro solution and its flux/stress for Python users: DOLFINx functions and files.

After ``hmm_fenics.solver.solve(problem, model)`` (or ``stepping.march``), ``macro_fields``
gives the macro temperature/displacement and the flux/stress field as DOLFINx functions,
and ``write_fields`` writes them as XDMF or VTX (ADIOS2) files — with the same projection
(cell averages of the quadrature values, ``run.fields.cell_average``) and the same writer
(``run.series.FieldWriter``) as ``hmm-fenics run``::

    from hmm_fenics.solver import solve
    solve(problem, model)
    fields = hmm_fenics.macro_fields(problem)
    hmm_fenics.write_fields(fields, "out")          # out/temperature.xdmf, out/flux.xdmf
"""

from pathlib import Path
from typing import Any, NamedTuple

from hmm_fenics.errors import InputError
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.parallel.collective import on_one_rank
from hmm_fenics.physics import Elasticity
from hmm_fenics.run.fields import as_tensor, cell_average, flux_shape
from hmm_fenics.run.series import FieldWriter

KINDS = ("xdmf", "vtx")


class MacroFields(NamedTuple):
    """The macro fields of a solved problem (copies: later solves do not change them).

    Attributes:
        solution: The macro unknown, a Lagrange ``dolfinx.fem.Function`` named
            ``temperature`` (diffusion) or ``displacement`` (elasticity).
        flux: DG0 cell averages of the quadrature-point flux (vector, named ``flux``) or
            stress (a 3×3 tensor also in 2D, named ``stress``, σ33 = 0: ``hmm-fenics run``
            adds ⟨σ33⟩ of plane-strain cells, this helper does not ask the cells again).
    """

    solution: Any
    flux: Any


def macro_fields(problem: MacroProblem) -> MacroFields:
    """The macro solution and the flux/stress of ``problem`` as it stands (collective).

    Args:
        problem: A macro problem whose quadrature flux the last solve filled.

    Returns:
        Copies of the solution and the cell-averaged flux/stress.
    """
    from dolfinx import fem

    physics = problem.physics
    elastic = isinstance(physics, Elasticity)
    solution = fem.Function(problem.V, name="displacement" if elastic else "temperature")
    solution.x.array[:] = problem.u.x.array
    q = problem.quadrature
    flux = cell_average(
        problem.mesh.mesh,
        as_tensor(physics, q.flux),
        flux_shape(physics),
        q.dx,
        "stress" if elastic else "flux",
    )
    return MacroFields(solution, flux)


def write_fields(
    fields: MacroFields,
    folder: str | Path,
    kind: str = "xdmf",
    time: float = 0.0,
) -> list[Path]:
    """Write the solution and the flux/stress to ``folder`` (collective; one file each).

    Files are ``<name>.xdmf`` (with ``.h5``; degree > 1 interpolated onto P1) or
    ``<name>.bp`` (VTX, ADIOS2), named after the functions; existing files are replaced.

    Args:
        fields: From ``macro_fields``.
        folder: Output folder (created).
        kind: ``"xdmf"`` or ``"vtx"``.
        time: The time stamp written with the fields.

    Returns:
        The paths written.

    Raises:
        InputError: an unknown ``kind``.
    """
    if kind not in KINDS:
        raise InputError(f"write_fields: kind must be one of {list(KINDS)}, got {kind!r}.")
    comm = fields.solution.function_space.mesh.comm
    out = Path(folder)
    on_one_rank(comm, lambda: out.mkdir(parents=True, exist_ok=True))
    writer = FieldWriter(comm, out, kind)
    try:
        for function in (fields.solution, fields.flux):
            writer.write(function.name, function, time)
    finally:
        writer.close()
    return list(writer.paths)
