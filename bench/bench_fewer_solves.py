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
4. ``nonlinear``: the nonlinear plate (quarter plate with a hole, power-law matrix with an
   elastic inclusion, path-independent cells) pulled in a ramp of several steps, with
   error-controlled prediction off, on with the tangent always formed (``tangent_reuse =
   0``), and on with the anchor's tangent reused (the default): micro factorizations per
   macro step, points by Newton / prediction, macro iterations, wall time, displacements
   and reactions against ``off``.

    OMP_NUM_THREADS=1 python bench/bench_fewer_solves.py [--parts cells,krylov,fe2,nonlinear]
        [--json out.json] [--png curves.png] [--quick]

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
    ws = np.zeros((n_points, cell_problem.n_unknowns))
    answers, counts = [], {"newton": 0, "shortcut": 0, "newton_iterations": 0, "krylov": 0}
    start_factorizations = cell_problem.factorizations
    clock = time.perf_counter()
    for f in CYCLE:
        for i in range(n_points):
            s = cell_problem.solve(f * strains[i], rows[i], ws[i])
            rows[i], ws[i] = s.internal_row, s.fluctuation
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


def part_cells(args):
    rows = []
    for dim, size in ((2, args.size2d), (3, args.size3d)):
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
    for dim, size in ((2, args.size2d), (3, args.size3d)):
        strains = point_strains(dim, 6, seed=1)[-3:-1]  # plastic, not the most strained
        for H in (3.0, 0.3, 0.03, 0.003, 0.0):
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
                    "factorizations": counts["factorizations"],
                    "cg_per_newton_step": counts["krylov"] / newton_steps,
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


def part_fe2(args):
    path = load_path([(0, 0), (1, 1), (2, 0), (3, 1)], steps=args.steps)
    runs = {}
    for mode in MODES:
        problem = plate_problem(args.macro_size)
        template = plate_cell(args.micro_size, mode)
        model = HistoryCellModel(template)
        clock = time.perf_counter()
        increments = march(problem, model, path, rtol=1e-10, atol=1e-14, progress=False)
        seconds = time.perf_counter() - clock
        records = [i.record for i in increments]
        runs[mode] = {
            "seconds": seconds,
            "points": len(problem.quadrature.coordinates()),
            "micro_unknowns": template.n_unknowns,
            "factorizations": [r["micro_solves"]["factorizations"] for r in records],
            "newton_points": [r["micro_solves"]["newton"] for r in records],
            "shortcut_points": [r["micro_solves"]["shortcut"] for r in records],
            "macro_iterations": [r["iterations"] for r in records],
            "displacement": [-0.002 * r["factor"] for r in records],
            "reaction": [r["reactions"]["right"][0] for r in records],
            "dissipated": [r["dissipated_energy"] for r in records],
            "u": problem.u.x.array.copy(),
        }
        run = runs[mode]
        print(
            f"fe2 {mode}: {seconds:.1f} s, factorizations per step {run['factorizations']}, "
            f"Newton points {run['newton_points']}, shortcut points {run['shortcut_points']}"
        )
    plain = runs["plain"]
    summary = {}
    for mode, run in runs.items():
        reaction = np.array(run["reaction"])
        reference = np.array(plain["reaction"])
        summary[mode] = {
            "seconds": run["seconds"],
            "points": run["points"],
            "micro_unknowns": run["micro_unknowns"],
            "factorizations_per_step": float(np.mean(run["factorizations"])),
            "factorization_ratio": float(np.sum(plain["factorizations"]))
            / max(float(np.sum(run["factorizations"])), 1.0),
            "time_ratio": plain["seconds"] / run["seconds"],
            "reaction_difference": float(
                np.abs(reaction - reference).max() / np.abs(reference).max()
            ),
            "u_difference": float(np.abs(run["u"] - plain["u"]).max() / np.abs(plain["u"]).max()),
            **{k: v for k, v in run.items() if k != "u"},
        }
        print(mode, {k: v for k, v in summary[mode].items() if not isinstance(v, list)})
    if args.png:
        plot(summary, args.png)
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


def plot(summary, png):
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
    ax.set_xlabel("prescribed displacement of the right side")
    ax.set_ylabel("reaction on the right side")
    ax.set_title("plastic composite plate: one curve, fewer factorizations", fontsize=9)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=130)
    print("wrote", png)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="cells,krylov,fe2,nonlinear")
    parser.add_argument("--points", type=int, default=40, help="points of the micro-only part")
    parser.add_argument("--size2d", type=float, default=0.05)
    parser.add_argument("--size3d", type=float, default=0.25)
    parser.add_argument("--macro-size", type=float, default=0.1)
    parser.add_argument("--micro-size", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=3, help="steps per path segment (fe2)")
    parser.add_argument("--ramp-steps", type=int, default=4, help="steps of the nonlinear ramp")
    parser.add_argument("--quick", action="store_true", help="coarse sizes (a smoke run)")
    parser.add_argument("--json")
    parser.add_argument("--png", default="fewer_solves_curves.png")
    args = parser.parse_args()
    if args.quick:
        args.points, args.size2d, args.size3d = 8, 0.1, 0.3
        args.macro_size, args.micro_size, args.steps, args.ramp_steps = 0.2, 0.1, 2, 2
    parts = {
        "cells": part_cells,
        "krylov": part_krylov,
        "fe2": part_fe2,
        "nonlinear": part_nonlinear,
    }
    results = {name: parts[name](args) for name in args.parts.split(",")}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
