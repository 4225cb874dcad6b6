"""Stage times of meshing + homogenizing random cells (issue 3).

A 2D cell with 50 random disks and a 3D cell with 20 random spheres, both at ~50k dofs
(elasticity, glass/epoxy), meshed from scratch (no cache) and homogenized.

    OMP_NUM_THREADS=1 python bench/bench_rve.py [--json bench/results/rve.json]
"""

import argparse
import json
import time
from pathlib import Path

import hmm_fenics as hf

MATERIALS = {"matrix": hf.IsotropicElastic(3.0, 0.35), "inclusion": hf.IsotropicElastic(70.0, 0.2)}
CASES = {
    "2D, 50 random disks, f = 0.4": hf.RVESpec(
        "random", 2, 0.4, mesh_size=0.0098, count=50, min_gap=0.005
    ),
    "3D, 20 random spheres, f = 0.2": hf.RVESpec(
        "random", 3, 0.2, mesh_size=0.065, count=20, min_gap=0.02
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = {}
    for label, spec in CASES.items():
        start = time.perf_counter()
        rve = hf.build_rve(spec, cache=False)
        meshed = time.perf_counter() - start
        result = hf.homogenize(rve, hf.Elasticity(spec.dim), MATERIALS)
        rows[label] = {
            "dofs": result.dofs,
            "fraction": result.fraction,
            "mesh (gmsh + checks)": meshed,
            **result.timings,
        }
        rows[label].pop("mesh")
        stages = ", ".join(
            f"{k} {v:.2f}"
            for k, v in rows[label].items()
            if isinstance(v, float) and k != "fraction"
        )
        print(
            f"{label}: dofs {result.dofs}, fraction {result.fraction:.4f}; seconds: {stages}",
            flush=True,
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
