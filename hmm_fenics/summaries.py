"""How results print: tensors, ensembles, homogenization and FE² summaries.

Plain formatting of the dictionaries the jobs return (NumPy only): tensors with fixed
decimals (never ``-0.00000``), Mandel or axis labels, and the notes that say what each
check of a cell measures under its boundary condition.
"""

from pathlib import Path
from typing import Any

import numpy as np


def format_run(results: dict[str, Any], output: Path) -> str:
    """A short summary of a run and its timings table."""
    if results["job"] == "homogenization":
        return format_result(results) + f"\n\nwrote {output}/results.json and the RVE fields"
    lines = [
        f"FE² {results['physics']} ({results['dim']}D): {results['macro_points']} macro "
        f"quadrature points on {results['macro_cells']} cells, {results['ranks']} rank(s)",
        f"  load steps {len(results['steps'])}, macro Newton iterations {results['newton_iterations']}",
        f"  energy {results['energy']:.6g}",
    ]
    if results.get("effective_tensor") is not None:  # a linear cell: the tensor it answers with
        C = np.asarray(results["effective_tensor"], dtype=np.float64)
        bc = results.get("micro_bc") or "periodic"
        what = "stiffness (Mandel)" if results["physics"] == "elasticity" else "conductivity"
        kind = "effective" if bc == "periodic" else f"apparent ({bc} BC)"
        labels = axes(results["physics"], results["dim"])
        lines.append(f"  {kind} {what} of the cell:")
        lines.append(" " * 9 + "".join(f"{label:>12}" for label in labels))
        lines += [
            f"  {label:>7}" + "".join(fixed(v, 12) for v in row)
            for label, row in zip(labels, C, strict=True)
        ]
    for name, value in results["reactions"].items():
        shown = ", ".join("free" if v is None else f"{v:.6g}" for v in value)
        lines.append(f"  reaction on {name}: {shown}")
    lines += ["", *results["timings_table"]]
    stages = ", ".join(f"{k} {v:.2f}" for k, v in results["timings"].items())
    lines += [f"stages [s, max over ranks]: {stages}", f"wrote {output}/"]
    return "\n".join(lines)


def fixed(value: float, width: int = 0, digits: int = 5) -> str:
    """``value`` with ``digits`` decimals, right-aligned in ``width``; never ``-0.00000``."""
    return f"{round(float(value), digits) + 0.0:{width}.{digits}f}"


def axes(physics: str, dim: int) -> list[str]:
    """Row/column labels of a tensor: Mandel components (elasticity) or axes (diffusion)."""
    if physics == "elasticity":
        return ["11", "22", "√2·12"] if dim == 2 else ["11", "22", "33", "√2·23", "√2·13", "√2·12"]
    return ["1", "2", "3"][:dim]


def format_ensemble(result: Any, physics: str, dim: int) -> str:
    """A table of an ensemble: each independent entry's mean, deviation and 95% interval.

    Args:
        result: An ``EnsembleResult``.
        physics: ``"diffusion"`` or ``"elasticity"``.
        dim: 2 or 3.
    """
    labels = axes(physics, dim)
    n = len(result.seeds)
    lines = [
        f"{n} realizations (seeds {result.seeds[0]}–{result.seeds[-1]}), micro BC {result.bc}",
        f"{'entry':>13} {'mean':>12} {'std':>12} {'95% CI ±':>12} {'± / |mean|':>11}",
    ]
    for i, j in zip(*np.triu_indices(len(labels)), strict=True):
        mean, std, ci = result.mean[i, j], result.std[i, j], result.ci95[i, j]
        relative = f"{ci / abs(mean):11.2e}" if abs(mean) > 1e-12 * abs(result.mean).max() else ""
        entry = f"{labels[i]},{labels[j]}"
        lines.append(
            f"{entry:>13} {fixed(mean, 12)} {fixed(std, 12)} {fixed(ci, 12)} {relative:>11}".rstrip()
        )
    fractions = result.fractions
    lines.append(f"inclusion fractions {fixed(fractions.min())} – {fixed(fractions.max())}")
    return "\n".join(lines)


def format_result(result: dict[str, Any]) -> str:
    """A readable table of a homogenization result."""
    C = np.asarray(result["tensor"])
    kind = "Effective" if result.get("bc", "periodic") == "periodic" else "Apparent"
    labels = axes(result["physics"], result["dim"])
    if result["physics"] == "elasticity":
        title = f"{kind} stiffness, {result['notation']}"
    else:
        title = f"{kind} conductivity"
    width = max(11, int(np.ceil(np.log10(max(np.abs(C).max(), 1.0)))) + 8)
    lines = [title, " " * 7 + "".join(f"{lab:>{width}}" for lab in labels)]
    for lab, row in zip(labels, C, strict=True):
        lines.append(f"{lab:>7}" + "".join(fixed(v, width) for v in row))
    t = result["timings"]
    if result["physics"] == "elasticity":  # the shear entries in tensor notation too
        shear = 2 if result["dim"] == 2 else 5
        lines.append(
            f"  (tensor notation: C1111 = {C[0, 0]:.5g}, C1122 = {C[0, 1]:.5g}, "
            f"C2222 = {C[1, 1]:.5g}, C1212 = {C[shear, shear] / 2:.5g})"
        )
    bc = result.get("bc", "periodic")
    window = (
        f", window of {result['oversampling']:g} periods per axis"
        if result.get("oversampling")
        else ""
    )
    notes = CHECK_NOTES.get(bc, CHECK_NOTES["periodic"])
    lines += [
        "",
        f"  micro BC             {bc}{window}"
        + ("" if bc == "periodic" else " (an apparent tensor)"),
        f"  micro dofs           {result['dofs']} (unknowns {result['unknowns']}, P{result['degree']})",
        f"  inclusion fraction   {fixed(result['fraction'])} (achieved by the mesh)",
        f"  ⟨ε⟩ − G              {result['gradient_error']:.2e} ({notes[0]})",
        f"  periodicity of w     {result['periodicity_error']:.2e} ({notes[1]})",
        f"  Hill–Mandel residual {result['hill_mandel_residual']:.2e} ({notes[2]})",
        f"  symmetry error       {result['symmetry_error']:.2e} ({notes[3]})",
        "  time [s]             " + ", ".join(f"{k} {v:.3f}" for k, v in t.items()),
    ]
    return "\n".join(lines)


CHECK_NOTES = {
    "periodic": (
        "whole box; fails if w is not periodic",
        "matched face nodes",
        "identity: round-off only",
        "identity: solve error only",
    ),
    "dirichlet": (
        "whole box; fails if w is not zero on the faces",
        "not computed: w = 0 on the faces",
        "identity: round-off only",
        "identity: solve error only",
    ),
    "neumann": (
        "whole box; the constraint ⟨∇w⟩ = 0",
        "not computed: w is free on the faces",
        "identity: round-off only",
        "identity: solve error only",
    ),
    "oversampling": (
        "not computed for a window",
        "not computed: affine data on the window",
        "not an identity for oversampling",
        "not symmetric by design: the inner average of a window",
    ),
}
"""The notes ``homogenize``'s summary puts after each check, per ``micro.bc``."""
