"""MPI scaling of micro-dominated FE² (issue 5): efficiency, imbalance, and a scheduler simulator.

    OMP_NUM_THREADS=1 python bench/bench_scaling.py [--json bench/results/scaling.json]

Runs `bench/bench_scaling.py --worker MODE` under mpirun with 1 and 2 ranks (one run each),
on a plate with a hole whose cells near the hole are nonlinear (power-law epoxy) and linear
elsewhere: a skewed micro load. Then replays the recorded per-point costs in the NumPy
simulator of the scheduler at 64, 1024 and 16384 ranks.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__)


def worker(mode: str, out: str) -> None:
    from mpi4py import MPI

    import hmm_fenics as hf
    from hmm_fenics.coupling.micro_models import BalancedModel, EffectiveModel
    from hmm_fenics.macro.mesh import macro_mesh
    from hmm_fenics.macro.problem import MacroProblem
    from hmm_fenics.materials import PowerLawElastic
    from hmm_fenics.micro.cell_problem import MicroResponse
    from hmm_fenics.micro.nonlinear import NonlinearCellModel, nonlinear_cell_problem
    from hmm_fenics.solver import solve

    comm = MPI.COMM_WORLD
    physics = hf.Elasticity(2)
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.06))
    glass = hf.IsotropicElastic(70.0, 0.2)
    soft = {"matrix": PowerLawElastic(3.0, 0.35, 0.002, 0.5), "inclusion": glass}
    nonlinear = NonlinearCellModel(nonlinear_cell_problem(physics, rve, soft))
    linear = EffectiveModel(
        hf.cell_problem(
            physics, rve, {"matrix": hf.IsotropicElastic(3.0, 0.35), "inclusion": glass}
        ).effective_tensor
    )

    class Zoned:
        """Nonlinear cells within 0.45 of the hole centre, the linear tensor elsewhere."""

        last_costs = None

        def reset(self):
            nonlinear.reset()

        def respond(self, G, x, ids=None):
            near = np.linalg.norm(x, axis=1) < 0.45
            flux, tangent = np.zeros_like(G), np.zeros((len(G), G.shape[1], G.shape[1]))
            costs = np.zeros(len(G))
            if near.any():
                r = nonlinear.respond(G[near], x[near])
                flux[near], tangent[near] = r.flux, r.tangent
                costs[near] = nonlinear.last_costs
            if (~near).any():
                start = time.perf_counter()
                r = linear.respond(G[~near], x[~near])
                flux[~near], tangent[~near] = r.flux, r.tangent
                costs[~near] = (time.perf_counter() - start) / max((~near).sum(), 1)
            self.last_costs = costs
            return MicroResponse(flux, tangent)

    zoned = Zoned()
    model = BalancedModel(zoned, comm) if mode == "balanced" else zoned
    mesh = macro_mesh("plate-with-hole", 0.07, params={"L": 1.0, "R": 0.25})
    problem = MacroProblem(
        mesh, physics, {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.004, None)}
    )
    start = time.perf_counter()
    result = solve(problem, model)
    total = time.perf_counter() - start
    x = problem.quadrature.coordinates()
    costs = comm.gather((x, zoned.last_costs if mode != "balanced" else None), root=0)
    if comm.rank == 0:
        data = {
            "ranks": comm.size,
            "mode": mode,
            "seconds": total,
            "iterations": result.iterations,
            "imbalance": result.imbalance,
            "micro_seconds_rank0": result.timings["micro"],
        }
        if mode != "balanced":
            xs = np.concatenate([c[0] for c in costs])
            cs = np.concatenate([c[1] for c in costs])
            data["points_x"] = xs[:, 0].tolist()
            data["costs"] = cs.tolist()
        Path(out).write_text(json.dumps(data))


def run(ranks: int, mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        mpirun = Path(sys.executable).parent / "mpirun"
        command = [
            str(mpirun),
            "-n",
            str(ranks),
            sys.executable,
            str(HERE),
            "--worker",
            mode,
            "--out",
            str(out),
        ]
        subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(out.read_text())


def simulate_table(x: np.ndarray, costs: np.ndarray) -> dict:
    from hmm_fenics.parallel.schedule import simulate

    order = np.argsort(x)  # a spatial partition along x1: the nonlinear zone lands on few ranks
    table = {}
    rng = np.random.default_rng(0)
    for ranks in (64, 1024, 16384):
        per_rank = 64
        sample = costs[order][np.sort(rng.integers(0, len(costs), ranks * per_rank))]
        parts = np.array_split(sample, ranks)
        before, after, moved = simulate(parts, mix=False)  # the contiguous shift
        _, dealt, moved_dealt = simulate(parts, mix=True)  # dealt, then cut (the default)
        bytes_per_item = 8 * (
            (3 + 2) + (3 + 9 + 1)
        )  # gradient + point out, flux + tangent + cost back
        table[ranks] = {
            "points": ranks * per_rank,
            "imbalance_owner": before,
            "imbalance_balanced": after,
            "moved_fraction": moved,
            "mean_bytes_per_rank": moved * per_rank * bytes_per_item,
            "imbalance_dealt": dealt,
            "moved_fraction_dealt": moved_dealt,
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["owner", "balanced"])
    parser.add_argument("--out")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.out)
        return
    one = run(1, "owner")
    two_owner = run(2, "owner")
    two_balanced = run(2, "balanced")
    efficiency = one["seconds"] / (2 * two_balanced["seconds"])
    rows = {
        "1 rank": {k: one[k] for k in ("seconds", "iterations")},
        "2 ranks owner-computes": {k: two_owner[k] for k in ("seconds", "imbalance")},
        "2 ranks balanced": {k: two_balanced[k] for k in ("seconds", "imbalance")},
        "efficiency 1 -> 2 (balanced)": efficiency,
        "efficiency 1 -> 2 (owner)": one["seconds"] / (2 * two_owner["seconds"]),
        "simulator": simulate_table(np.array(one["points_x"]), np.array(one["costs"])),
    }
    print(json.dumps(rows, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
