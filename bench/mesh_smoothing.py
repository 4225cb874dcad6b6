"""What gmsh's 2D smoothing pass costs and buys on the disk cell of bench_vs_sfepy (cases A, B).

For the Frontal-Delaunay surface mesh with and without ``Mesh.Smoothing``: the surface
meshing time (best of ``--repeat``), nodes, the worst and mean element quality (gmsh's
``gamma``), and the errors of the homogenized tensors (diffusion k 1/10: A11; plane strain
glass/epoxy: C11, C33) against the same cell meshed at ``--reference`` (smoothing on). The
cells are meshed from scratch (no cache).

    OMP_NUM_THREADS=1 python bench/mesh_smoothing.py [--json bench/results/mesh_smoothing.json]
"""

import argparse
import json
import time

import gmsh
import numpy as np

import hmm_fenics as hf
from hmm_fenics.rve import geometry

CONDUCTION = {"matrix": hf.Conductivity(k=1.0), "inclusion": hf.Conductivity(k=10.0)}
GLASS_EPOXY = {
    "matrix": hf.IsotropicElastic(E=3.0, nu=0.35),
    "inclusion": hf.IsotropicElastic(E=70.0, nu=0.2),
}


def surface_mesh(spec: hf.RVESpec, smoothing: int) -> tuple[float, int, float, float]:
    """Seconds of the surface meshing, nodes, min and mean gamma quality."""
    with geometry.gmsh_session():
        fitted = geometry._fit_boundary(spec, geometry.SURFACE_ALGORITHMS[0])
        geometry._mesh_options(fitted, geometry.SURFACE_ALGORITHMS[0])
        gmsh.option.setNumber("Mesh.Smoothing", smoothing)
        start = time.perf_counter()
        gmsh.model.mesh.generate(2)
        seconds = time.perf_counter() - start
        nodes = len(gmsh.model.mesh.getNodes()[0])
        tags = np.concatenate(gmsh.model.mesh.getElements(2)[1])
        quality = gmsh.model.mesh.getElementQualities(tags, "gamma")
    return seconds, nodes, float(quality.min()), float(quality.mean())


def tensors(spec: hf.RVESpec, smoothing: int) -> tuple[float, float, float]:
    """A11, C11, C33 of the cell meshed with ``smoothing``."""
    original = geometry._mesh_options

    def options(fitted: hf.RVESpec, algorithm: int) -> None:
        original(fitted, algorithm)
        gmsh.option.setNumber("Mesh.Smoothing", smoothing)

    geometry._mesh_options = options
    try:
        rve = hf.build_rve(spec, cache=False)
    finally:
        geometry._mesh_options = original
    A = hf.homogenize(rve, hf.Diffusion(2), CONDUCTION, check=False).tensor
    C = hf.homogenize(rve, hf.Elasticity(2), GLASS_EPOXY, check=False).tensor
    return float(A[0, 0]), float(C[0, 0]), float(C[2, 2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,40,128", help="1/h of the compared meshes")
    parser.add_argument("--reference", type=int, default=1024, help="1/h of the reference")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    reference = np.array(tensors(hf.RVESpec("inclusion", 2, 0.4, 1 / args.reference), 1))
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        spec = hf.RVESpec("inclusion", 2, 0.4, 1 / n)
        for smoothing in (1, 0):
            runs = [surface_mesh(spec, smoothing) for _ in range(args.repeat)]
            seconds = min(run[0] for run in runs)
            _, nodes, worst, mean = runs[0]
            errors = np.abs(np.array(tensors(spec, smoothing)) / reference - 1)
            rows.append(
                {
                    "h": f"1/{n}",
                    "smoothing": smoothing,
                    "seconds": seconds,
                    "nodes": nodes,
                    "min_gamma": worst,
                    "mean_gamma": mean,
                    "error_A11": errors[0],
                    "error_C11": errors[1],
                    "error_C33": errors[2],
                }
            )
            print(
                f"h=1/{n:<4d} smoothing {smoothing}: surface mesh {seconds:.3f} s, {nodes} nodes, "
                f"gamma min {worst:.3f} mean {mean:.3f}; errors A11 {errors[0]:.2e} "
                f"C11 {errors[1]:.2e} C33 {errors[2]:.2e}"
            )
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"reference": f"1/{args.reference}", "rows": rows}, file, indent=1)


if __name__ == "__main__":
    main()
