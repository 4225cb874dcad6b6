"""Warnings for set-ups that run but whose answer is suspect.

Each check returns a message or None; the job logs them on rank 0 before the solve.
"""

import math
from collections.abc import Mapping
from typing import Any

from hmm_fenics.macro.mesh import ADJACENT
from hmm_fenics.rve.spec import RVESpec

SCALE_SEPARATION = 5.0
"""Below this many RVE periods per macro element, the RVE sees the macro gradient vary."""
ELEMENTS_ACROSS = 4.0
"""Fewer micro elements than this across the smallest inclusion dimension: too coarse."""


def cell_resonance(period: float | None, macro_h: float) -> str | None:
    """Macro element size H close to the RVE period ε: FE² assumes ε ≪ H."""
    if period is None or macro_h >= SCALE_SEPARATION * period:
        return None
    return (
        f"cell resonance: the macro element size H = {macro_h:.3g} is only {macro_h / period:.2g} "
        f"RVE periods (micro.period = {period:.3g}); FE² assumes the RVE is much smaller than a "
        f"macro element (H ≥ {SCALE_SEPARATION:g} ε here). Coarsen the macro mesh, or resolve the "
        "microstructure directly (DNS) at this scale."
    )


def inclusion_size(spec: RVESpec) -> float | None:
    """Smallest dimension of an inclusion (diameter, layer thickness), or None (file, image)."""
    if spec.kind in ("file", "image"):
        return None
    if spec.kind == "laminate":
        return min(spec.fraction, 1 - spec.fraction) * spec.lengths[0]
    if spec.kind == "checkerboard":
        return 0.5 * min(spec.lengths)
    if spec.kind == "random":
        each = spec.fraction * spec.volume / spec.count
        if spec.dim == 2:
            radius = math.sqrt(each / (math.pi * spec.aspect))
        else:
            radius = (3 * each / (4 * math.pi * spec.aspect)) ** (1 / 3)
        return 2 * radius * max(1 - 2 * spec.radius_spread, 0.25)  # the smaller ones
    return 2 * min(spec.semi_axes())


def coarse_micro_mesh(spec: RVESpec) -> str | None:
    """Fewer than ``ELEMENTS_ACROSS`` micro elements across the smallest inclusion.

    Elements at interfaces have size ``mesh_size / refine``, which is what resolves a small
    inclusion.
    """
    size = inclusion_size(spec)
    if size is None:  # a file: no inclusion size known (and no mesh_size needed)
        return None
    h = spec.h / spec.refine
    if size >= ELEMENTS_ACROSS * h:
        return None
    return (
        f"micro mesh too coarse for the inclusion: rve.mesh_size = {spec.h:.3g} (refine "
        f"{spec.refine:g}) gives about {size / h:.1f} elements across its smallest dimension "
        f"{size:.3g}; use rve.mesh_size ≤ {2 * spec.refine * size / (2 * ELEMENTS_ACROSS):.3g}."
    )


def dirichlet_conflict(geometry: str, dirichlet: Mapping[str, Any]) -> str | None:
    """Two boundaries that meet prescribe different values of one component.

    Where they meet, the nodes take one of the two values, so the solution is singular
    there (a step in the prescribed field). Known for built-in geometries only.

    Args:
        geometry: The macro geometry (``rectangle``, ``box``, …; ``file``: not checked).
        dirichlet: Boundary name → value (diffusion) or tuple of component values with None
            for free ones (elasticity), as in ``RunConfig.dirichlet``.
    """
    clashes = []
    for a, b in ADJACENT.get(geometry, ()):
        if a not in dirichlet or b not in dirichlet:
            continue
        va, vb = dirichlet[a], dirichlet[b]
        pairs = zip(va, vb, strict=True) if isinstance(va, tuple) else [(va, vb)]
        for i, (x, y) in enumerate(pairs):
            if x is not None and y is not None and x != y:
                where = f"[{i}]" if isinstance(va, tuple) else ""
                clashes.append(f"dirichlet.{a}{where} = {x:g} and dirichlet.{b}{where} = {y:g}")
    if not clashes:
        return None
    return (
        f"conflicting Dirichlet values where boundaries meet: {'; '.join(clashes)}. The shared "
        "nodes take one of them and the field jumps there; make the values agree, or free the "
        'component on one boundary ("free").'
    )
