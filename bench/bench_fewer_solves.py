"""Fewer micro solves at the same answers (issue 14): factorizations and wall time per technique.

Three modes of the same history cell, in one run:

- ``plain``: no shortcut, every micro Newton step refactored (issue 11's cell);
- ``shortcut``: the exact elastic shortcut (points whose elastic trial does not flow are
  answered by one solve with the cached elastic factorization), Newton otherwise;
- ``krylov``: the shortcut and Newton steps by CG preconditioned with the elastic factor.

Parts:

1. ``cells``: micro only, a 2D and a 3D composite cell (J2 matrix, elastic inclusion): N
   points with macro strains spread like a stress concentration (amplitudes from 0.2 to 2.5
   yield strains) along load/unload/reload/reverse, each point solved once per step (one
   macro iteration); factorizations, wall time, answers against ``plain``.
2. ``krylov``: the Krylov Newton against the refactoring one over hardening moduli from
   stiff to nearly perfect plasticity (2D and 3D cells): CG iterations per Newton step,
   Newton steps, wall time per plastic point.
3. ``fe2``: the plastic composite run (a small ``/tmp/lead/plastic.toml``: quarter plate
   with a hole, J2 matrix with an elastic inclusion, load/unload/reload): micro
   factorizations per macro step, wall time, reactions against ``plain`` and the
   reaction–displacement curves overlaid in ``--png``.
   ``fe2_3d``: the same in 3D: a cantilever bar bent and released (yielding at its root
   only; a few dozen tetrahedra, ``--bar-cells``, one macro point each), a 3D cell of a
   J2 matrix around an elastic particle (``--size3d-fe2``); curves in ``--png3d``.
4. ``nonlinear``: the nonlinear plate (quarter plate with a hole, power-law matrix with an
   elastic inclusion, path-independent cells) pulled in a ramp of several steps, with
   error-controlled prediction off, on with the tangent always formed (``tangent_reuse =
   0``), and on with the anchor's tangent reused (the default): micro factorizations per
   macro step, points by Newton / prediction, macro iterations, wall time, displacements
   and reactions against ``off``.

    OMP_NUM_THREADS=1 python bench/bench_fewer_solves.py
        [--parts cells,krylov,fe2,fe2_3d,nonlinear] [--dims 2,3] [--json out.json]
        [--png curves.png] [--png3d curves_3d.png] [--quick]

``--dims`` selects the cells of ``cells`` and ``krylov``. ``--quick`` is a smoke run with
coarse sizes (tests/test_bench_fewer_solves.py runs ``--parts fe2_3d,krylov --dims 3
--quick``).

Timings on a shared machine are indicative; final numbers come from a quiet one.
"""

import argparse
import json
import time
from pathlib import Path

# isort: off
import hmm_fenics as hf  # first: it loads the DOLFINx wheel's MPI before dolfinx is imported
# isort: on

import numpy as np

from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.materials import PowerLawElastic
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.micro.nonlinear import MicroNewtonError, NonlinearCellModel, nonlinear_cell_problem
from hmm_fenics.point_laws import Elastic, J2Plasticity
from hmm_fenics.stepping import load_path, march

MODES = {
    "plain": {"shortcut": False, "linear_solver": "direct"},
    "shortcut": {"shortcut": True, "linear_solver": "direct"},
    "krylov": {"shortcut": True, "linear_solver": "krylov"},
}
CYCLE = [0.4, 0.8, 1.2, 1.0, 0.6, 1.0, 1.4, 1.0, 0.0, -1.0, -1.4, -1.0, 0.0]
"""Load factors of the micro-only path (load, unload, reload past, reverse, back)."""


def cell(dim, size, mode, H=(0.3, 0.2), matrix=(3.0, 0.35, 0.02)):
    fraction = 0.3 if dim == 2 else 0.1
    rve = hf.build_rve(hf.RVESpec("inclusion", dim, fraction, size))
    laws = {"matrix": J2Plasticity(*matrix, *H), "inclusion": Elastic(70.0, 0.2)}
    return history_cell_problem(hf.Elasticity(dim), rve, laws, **MODES[mode])


def point_strains(dim, n_points, seed=0):
    """Macro strains of N points at load factor 1: random directions, amplitudes 0.2–2.5 ε_y."""
    rng = np.random.default_rng(seed)
    n = 3 if dim == 2 else 6
    directions = rng.standard_normal((n_points, n))
    directions /= np.linalg.norm(directions, axis=1)[:, None]
    amplitudes = 0.0067 * np.geomspace(0.2, 2.5, n_points)
    return directions * amplitudes[:, None]


def walk_points(cell_problem, strains):
    """Each point along CYCLE, committing every step; (answers, seconds, counts)."""
    n_points = len(strains)
    rows = np.zeros((n_points, cell_problem.width_internal))
    committed = np.zeros((n_points, cell_problem.physics.n_components))
    answers, counts = [], {"newton": 0, "shortcut": 0, "newton_iterations": 0, "krylov": 0}
    start_factorizations = cell_problem.factorizations
    clock = time.perf_counter()
    for f in CYCLE:
        for i in range(n_points):
            s = cell_problem.solve(f * strains[i], rows[i], committed[i])
            rows[i], committed[i] = s.internal_row, f * strains[i]
            answers.append((s.flux, s.tangent))
            counts[s.method] += 1
            counts["newton_iterations"] += s.iterations
            counts["krylov"] += s.krylov_iterations
    seconds = time.perf_counter() - clock
    counts["factorizations"] = cell_problem.factorizations - start_factorizations
    return answers, seconds, counts


def difference(answers, reference):
    """Largest differences relative to the largest flux and tangent entries of the path."""
    flux_scale = max(np.abs(b[0]).max() for b in reference)
    tangent_scale = max(np.abs(b[1]).max() for b in reference)
    flux = (
        max(np.abs(a[0] - b[0]).max() for a, b in zip(answers, reference, strict=True)) / flux_scale
    )
    tangent = (
        max(np.abs(a[1] - b[1]).max() for a, b in zip(answers, reference, strict=True))
        / tangent_scale
    )
    return flux, tangent


def cells_of(args):
    """(dim, mesh size) of the micro-only cells chosen by ``--dims``."""
    sizes = {2: args.size2d, 3: args.size3d}
    return [(dim, sizes[dim]) for dim in args.dims]


def part_cells(args):
    rows = []
    for dim, size in cells_of(args):
        strains = point_strains(dim, args.points)
        reference = None
        for mode in MODES:
            c = cell(dim, size, mode)
            answers, seconds, counts = walk_points(c, strains)
            row = {"dim": dim, "mode": mode, "unknowns": c.n_unknowns, "seconds": seconds, **counts}
            if reference is None:
                reference = answers
            else:
                row["flux_difference"], row["tangent_difference"] = difference(answers, reference)
            rows.append(row)
            print(json.dumps(row))
    return rows


def part_krylov(args):
    """Krylov against refactoring on plastic points, hardening from stiff to nearly perfect."""
    rows = []
    for dim, size in cells_of(args):
        strains = point_strains(dim, 6, seed=1)[-3:-1]  # plastic, not the most strained
        for H in args.hardening:
            for mode in ("shortcut", "krylov"):
                c = cell(dim, size, mode, H=(0.6 * H, 0.4 * H))
                try:
                    _, seconds, counts = walk_points(c, strains)
                except MicroNewtonError as err:  # the micro Newton has no line search
                    rows.append({"dim": dim, "H": H, "mode": mode, "failed": str(err)[:120]})
                    print(json.dumps(rows[-1]))
                    continue
                newton_steps = max(counts["newton_iterations"], 1)
                row = {
                    "dim": dim,
                    "H": H,
                    "mode": mode,
                    "unknowns": c.n_unknowns,
                    "seconds": seconds,
                    "newton_points": counts["newton"],
                    "newton_steps": counts["newton_iterations"],
                    "newton_steps_per_point": counts["newton_iterations"]
                    / max(counts["newton"], 1),
                    "factorizations": counts["factorizations"],
                    "cg_iterations": counts["krylov"],
                    "cg_per_newton_step": counts["krylov"] / newton_steps,
                    "seconds_per_newton_point": seconds / max(counts["newton"], 1),
                }
                rows.append(row)
                print(json.dumps(row))
    return rows


def plate_problem(size):
    """A small /tmp/lead/plastic.toml: the quarter plate with a hole, pressed from the right."""
    mesh = macro_mesh("plate-with-hole", size, params={"L": 1.0, "R": 0.25})
    dirichlet = {"left": (0.0, None), "bottom": (None, 0.0), "right": (-0.002, None)}
    return MacroProblem(mesh, hf.Elasticity(2), dirichlet, quadrature_degree=1)


def plate_cell(size, mode):
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.2, size))
    laws = {"matrix": J2Plasticity(70.0, 0.33, 0.25, 1.0, 1.0), "inclusion": Elastic(400.0, 0.2)}
    return history_cell_problem(hf.Elasticity(2), rve, laws, **MODES[mode])


BAR = {"L": 2.0, "H": 0.5, "W": 0.5, "push": 0.03}
"""The 3D bar: L × H × W, clamped at x = 0, its far end (x = L) pushed down by ``push`` (its
x and z free) and released: bending, so the cells yield near the clamped root's top and
bottom fibres only, as they would around a notch."""


def bar_problem(cells):
    """The 3D bar on a structured mesh of ``cells`` = (nx, ny, nz) boxes of 6 tetrahedra
    (one macro point each: a few dozen, the gmsh mesher gives ~100 around even a coarse hole)."""
    from mpi4py import MPI

    from dolfinx import mesh as dmesh

    from hmm_fenics.macro.mesh import MacroMesh

    L, H, W = BAR["L"], BAR["H"], BAR["W"]
    msh = dmesh.create_box(
        MPI.COMM_WORLD, [[0.0, 0.0, 0.0], [L, H, W]], list(cells), dmesh.CellType.tetrahedron
    )
    fdim = msh.topology.dim - 1
    ends = {"left": 0.0, "right": L}
    facets = [
        dmesh.locate_entities_boundary(msh, fdim, lambda x, at=at: np.isclose(x[0], at))
        for at in ends.values()
    ]
    values = [np.full(len(f), tag, dtype=np.int32) for tag, f in enumerate(facets, start=1)]
    order = np.argsort(np.concatenate(facets))
    tags = dmesh.meshtags(msh, fdim, np.concatenate(facets)[order], np.concatenate(values)[order])
    mesh = MacroMesh(msh, tags, {name: tag for tag, name in enumerate(ends, start=1)})
    dirichlet = {"left": (0.0, 0.0, 0.0), "right": (None, -BAR["push"], None)}
    return MacroProblem(mesh, hf.Elasticity(3), dirichlet, quadrature_degree=1)


def bar_cell(size, fraction, mode):
    """A 3D J2 matrix around an elastic particle, the plate's materials."""
    rve = hf.build_rve(hf.RVESpec("inclusion", 3, fraction, size))
    laws = {"matrix": J2Plasticity(70.0, 0.33, 0.25, 1.0, 1.0), "inclusion": Elastic(400.0, 0.2)}
    return history_cell_problem(hf.Elasticity(3), rve, laws, **MODES[mode])


def compare_fe2(name, make_problem, make_cell, path, pull, component=0):
    """The FE² run in every ``MODES`` mode: counts per step, time, answers against plain.

    Args:
        name: Label of the printed lines.
        make_problem: () → a fresh ``MacroProblem`` (its ``right`` side moved by ``pull``).
        make_cell: mode → the history cell.
        path: The load path.
        pull: Prescribed displacement of ``right`` at load factor 1.
        component: The displacement and reaction component of the curve.
    """
    runs = {}
    for mode in MODES:
        problem = make_problem()
        clock = time.perf_counter()
        template = make_cell(mode)
        model = HistoryCellModel(template)
        setup = time.perf_counter() - clock
        clock = time.perf_counter()
        increments = march(problem, model, path, rtol=1e-10, atol=1e-14, progress=False)
        seconds = time.perf_counter() - clock
        records = [i.record for i in increments]
        runs[mode] = {
            "seconds": seconds,
            "setup_seconds": setup,
            "points": len(problem.quadrature.coordinates()),
            "micro_unknowns": template.n_unknowns,
            "factorizations": [r["micro_solves"]["factorizations"] for r in records],
            "newton_points": [r["micro_solves"]["newton"] for r in records],
            "shortcut_points": [r["micro_solves"]["shortcut"] for r in records],
            "krylov_iterations": [r["micro_solves"]["krylov_iterations"] for r in records],
            "macro_iterations": [r["iterations"] for r in records],
            "displacement": [pull * r["factor"] for r in records],
            "reaction": [r["reactions"]["right"][component] for r in records],
            "dissipated": [r["dissipated_energy"] for r in records],
            "u": problem.u.x.array.copy(),
        }
        run = runs[mode]
        print(
            f"{name} {mode}: {seconds:.1f} s, factorizations per step {run['factorizations']}, "
            f"Newton points {run['newton_points']}, shortcut points {run['shortcut_points']}"
        )
    plain = runs["plain"]
    summary = {}
    for mode, run in runs.items():
        reaction = np.array(run["reaction"])
        reference = np.array(plain["reaction"])
        newton_points = max(sum(run["newton_points"]), 1)
        summary[mode] = {
            "seconds": run["seconds"],
            "points": run["points"],
            "micro_unknowns": run["micro_unknowns"],
            "factorizations_per_step": float(np.mean(run["factorizations"])),
            "factorization_ratio": float(np.sum(plain["factorizations"]))
            / max(float(np.sum(run["factorizations"])), 1.0),
            "time_ratio": plain["seconds"] / run["seconds"],
            "cg_per_newton_point": float(np.sum(run["krylov_iterations"])) / newton_points,
            "reaction_difference": float(
                np.abs(reaction - reference).max() / np.abs(reference).max()
            ),
            "u_difference": float(np.abs(run["u"] - plain["u"]).max() / np.abs(plain["u"]).max()),
            **{k: v for k, v in run.items() if k != "u"},
        }
        print(mode, {k: v for k, v in summary[mode].items() if not isinstance(v, list)})
    return summary


def part_fe2(args):
    path = load_path([(0, 0), (1, 1), (2, 0), (3, 1)], steps=args.steps)
    summary = compare_fe2(
        "fe2",
        lambda: plate_problem(args.macro_size),
        lambda mode: plate_cell(args.micro_size, mode),
        path,
        -0.002,
    )
    if args.png:
        title = "plastic composite plate: one curve, fewer factorizations"
        plot(summary, args.png, title, "prescribed displacement of the right side",
             "reaction on the right side")  # fmt: skip
    return summary


def part_fe2_3d(args):
    """The 3D bar bent and released, every mode."""
    path = load_path([(0, 0), (1, 1), (2, 0)], steps=args.steps3d)
    summary = compare_fe2(
        "fe2_3d",
        lambda: bar_problem(args.bar_cells),
        lambda mode: bar_cell(args.size3d_fe2, args.fraction3d_fe2, mode),
        path,
        -BAR["push"],
        component=1,
    )
    if args.png3d:
        title = "3D cantilever bent and released, J2 composite cell: fewer factorizations"
        plot(summary, args.png3d, title, "tip displacement (y)", "reaction on the tip (y)")
    return summary


PREDICTION = {
    "off": {"predict": False},
    "fresh tangent": {"predict": True, "tangent_reuse": 0.0},
    "predict": {"predict": True},
}


def part_nonlinear(args):
    """The power-law plate ramp with prediction off / on (tangent formed) / on (reused)."""
    materials = {
        "matrix": PowerLawElastic(3.0, 0.35, 0.005, 0.3),
        "inclusion": hf.IsotropicElastic(70.0, 0.2),
    }
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, args.micro_size))
    path = load_path([(0, 0), (1, 1)], steps=args.ramp_steps)
    physics = hf.Elasticity(2)
    runs = {}
    for mode, options in PREDICTION.items():
        mesh = macro_mesh("plate-with-hole", args.macro_size, params={"L": 1.0, "R": 0.25})
        pull = {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.03, None)}
        problem = MacroProblem(mesh, physics, pull, quadrature_degree=1)
        cell = nonlinear_cell_problem(physics, rve, materials)
        model = NonlinearCellModel(cell, **options)
        clock = time.perf_counter()
        increments = march(problem, model, path, rtol=1e-10, atol=1e-14, progress=False)
        records = [i.record for i in increments]
        seconds = time.perf_counter() - clock
        solves = [r["micro_solves"] for r in records]
        runs[mode] = {
            "seconds": seconds,
            "points": len(problem.quadrature.coordinates()),
            "micro_unknowns": cell.n_unknowns,
            "factorizations": [s["factorizations"] for s in solves],
            "newton_points": [s["newton"] for s in solves],
            "predicted_points": [s["predicted"] for s in solves],
            "macro_iterations": [r["iterations"] for r in records],
            "last_residuals": records[-1]["residuals"],
            "reaction": [r["reactions"]["right"][0] for r in records],
            "anchor_MiB": model.anchor_bytes / 2**20,
            "u": problem.u.x.array.copy(),
        }
        run = runs[mode]
        print(
            f"nonlinear {mode}: {seconds:.1f} s, factorizations per step {run['factorizations']}, "
            f"Newton points {run['newton_points']}, predicted {run['predicted_points']}, "
            f"macro iterations {run['macro_iterations']}"
        )
    off = runs["off"]
    summary = {}
    for mode, run in runs.items():
        reaction, reference = np.array(run["reaction"]), np.array(off["reaction"])
        summary[mode] = {
            "factorizations_per_step": float(np.mean(run["factorizations"])),
            "factorization_ratio": float(np.sum(off["factorizations"]))
            / max(float(np.sum(run["factorizations"])), 1.0),
            "time_ratio": off["seconds"] / run["seconds"],
            "reaction_difference": float(
                np.abs(reaction - reference).max() / np.abs(reference).max()
            ),
            "u_difference": float(np.abs(run["u"] - off["u"]).max() / np.abs(off["u"]).max()),
            **{k: v for k, v in run.items() if k != "u"},
        }
        print(mode, {k: v for k, v in summary[mode].items() if not isinstance(v, list)})
    return summary


def plot(summary, png, title, xlabel, ylabel):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    styles = {"plain": ("k", "-", "o"), "shortcut": ("C0", "--", "x"), "krylov": ("C3", ":", "+")}
    for mode, run in summary.items():
        color, line, marker = styles[mode]
        label = (
            f"{mode}: {run['factorizations_per_step']:.1f} factorizations/step, "
            f"{run['seconds']:.0f} s"
        )
        ax.plot(
            [0.0, *run["displacement"]],
            [0.0, *run["reaction"]],
            color=color,
            linestyle=line,
            marker=marker,
            label=label,
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=130)
    print("wrote", png)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="cells,krylov,fe2,fe2_3d,nonlinear")
    parser.add_argument("--dims", default="2,3", help="cells of the cells and krylov parts")
    parser.add_argument(
        "--hardening",
        default="3,0.3,0.03,0.003,0",
        help="hardening moduli H_iso + H_kin of the krylov part (stiff to perfectly plastic)",
    )
    parser.add_argument("--points", type=int, default=40, help="points of the micro-only part")
    parser.add_argument("--size2d", type=float, default=0.05)
    parser.add_argument("--size3d", type=float, default=0.25)
    parser.add_argument("--macro-size", type=float, default=0.1)
    parser.add_argument("--micro-size", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=3, help="steps per path segment (fe2)")
    parser.add_argument("--ramp-steps", type=int, default=4, help="steps of the nonlinear ramp")
    parser.add_argument("--bar-cells", default="4,2,1", help="boxes (6 tetrahedra each) of the bar")
    parser.add_argument("--size3d-fe2", type=float, default=0.22, help="3D cell of fe2_3d")
    parser.add_argument("--fraction3d-fe2", type=float, default=0.15, help="its particle")
    parser.add_argument("--steps3d", type=int, default=3, help="steps per segment (fe2_3d)")
    parser.add_argument("--quick", action="store_true", help="coarse sizes (a smoke run)")
    parser.add_argument("--json")
    parser.add_argument("--png", default="fewer_solves_curves.png")
    parser.add_argument("--png3d", default="fewer_solves_curves_3d.png")
    args = parser.parse_args(argv)
    if args.quick:
        args.points, args.size2d, args.size3d = 8, 0.1, 0.3
        args.macro_size, args.micro_size, args.steps, args.ramp_steps = 0.2, 0.1, 2, 2
        args.bar_cells, args.steps3d = "2,1,1", 1
        args.size3d_fe2, args.fraction3d_fe2 = 0.4, 0.08
        args.hardening = "0.3,0"
    args.dims = [int(d) for d in args.dims.split(",")]
    args.bar_cells = [int(n) for n in args.bar_cells.split(",")]
    args.hardening = [float(h) for h in args.hardening.split(",")]
    parts = {
        "cells": part_cells,
        "krylov": part_krylov,
        "fe2": part_fe2,
        "fe2_3d": part_fe2_3d,
        "nonlinear": part_nonlinear,
    }
    results = {name: parts[name](args) for name in args.parts.split(",")}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
