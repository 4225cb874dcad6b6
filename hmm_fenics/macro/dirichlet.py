"""Dirichlet conditions on the named boundaries of a mesh, per component for vector fields."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import MacroMesh
from hmm_fenics.physics import Physics

BoundaryValue = float | Sequence[float | None]
"""A number (diffusion), or one entry per displacement component, ``None`` for a free one."""


def dirichlet_bcs(
    V: Any,
    mesh: MacroMesh,
    physics: Physics,
    dirichlet: Mapping[str, BoundaryValue],
    value: Callable[[float], Any] = float,
) -> list[Any]:
    """DOLFINx Dirichlet conditions on the named boundaries of ``mesh``.

    Args:
        V: Function space of the field (scalar, or vector with ``physics.dim`` components).
        mesh: The mesh and its named boundaries.
        physics: ``Diffusion`` (scalar values) or ``Elasticity`` (one value per component).
        dirichlet: Boundary name → prescribed value; a ``None`` component is left free.
        value: Turns each prescribed number into what ``dirichletbc`` takes: the number
            itself, or e.g. a ``fem.Constant`` that follows a load factor.

    Raises:
        InputError: a boundary name is not in ``mesh``, or a vector value has the wrong
            number of components.
    """
    from dolfinx import fem

    unknown = sorted(set(dirichlet) - set(mesh.boundaries))
    if unknown:
        raise InputError(
            f"boundary name(s) {unknown} are not in the mesh, which has {sorted(mesh.boundaries)}."
        )
    fdim = mesh.mesh.topology.dim - 1
    bcs = []
    for name, given in dirichlet.items():
        facets = mesh.facet_tags.find(mesh.boundaries[name])
        if not physics.value_shape:
            if isinstance(given, Sequence):
                raise InputError(f"dirichlet.{name}: give one number, got {given!r}.")
            dofs = fem.locate_dofs_topological(V, fdim, facets)
            bcs.append(fem.dirichletbc(value(float(given)), dofs, V))
            continue
        if not isinstance(given, Sequence) or len(given) != physics.dim:
            raise InputError(
                f"dirichlet.{name}: give {physics.dim} components (None for free), got {given!r}."
            )
        for c, g in enumerate(given):
            if g is None:
                continue
            Vc = V.sub(c)
            dofs = fem.locate_dofs_topological(Vc, fdim, facets)
            bcs.append(fem.dirichletbc(value(float(g)), dofs, Vc))
    return bcs
