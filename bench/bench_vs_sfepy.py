"""hmm_fenics ``homogenize`` against SfePy's periodic homogenization on the same gmsh meshes.

Cases (P1, periodic fluctuation, same .msh file for both codes):
  A  2D disk f = 0.4, diffusion, k 1 / 10                  (h = 1/128)
  B  same cell, plane strain, E 3 / 70, nu 0.35 / 0.2      (h = 1/128)
  C  3D sphere f = 0.2, elasticity with B's materials       (h = 1/24)
  D  3D sphere f = 0.2, diffusion, k 1 / 10                 (h = 1/24)

Times are wall seconds from reading the mesh file to the tensor, imports excluded, best of
``--repeat`` runs each; SfePy runs in its own venv (``bench/sfepy_env.sh``).

    bash bench/sfepy_env.sh
    python bench/bench_vs_sfepy.py [--cases ABCD] [--json bench/results/vs_sfepy.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import hmm_fenics as hf
from hmm_fenics.rve.mesh import write_msh

HERE = Path(__file__).parent
SFEPY_PYTHON = Path(os.environ.get("SFEPY_VENV", HERE.parent / ".venv-sfepy")) / "bin" / "python"

CONDUCTION = {"matrix": {"k": 1.0}, "inclusion": {"k": 10.0}}
GLASS_EPOXY = {"matrix": {"E": 3.0, "nu": 0.35}, "inclusion": {"E": 70.0, "nu": 0.2}}
CASES = {
    "A": (hf.RVESpec("inclusion", 2, 0.4, 1 / 128), "diffusion", CONDUCTION),
    "B": (hf.RVESpec("inclusion", 2, 0.4, 1 / 128), "elasticity", GLASS_EPOXY),
    "C": (hf.RVESpec("inclusion", 3, 0.2, 1 / 24), "elasticity", GLASS_EPOXY),
    "D": (hf.RVESpec("inclusion", 3, 0.2, 1 / 24), "diffusion", CONDUCTION),
}


def ours(
    path: Path, dim: int, physics_kind: str, params: dict, repeat: int
) -> tuple[np.ndarray, float, dict]:
    physics = hf.Diffusion(dim) if physics_kind == "diffusion" else hf.Elasticity(dim)
    materials = {
        name: hf.Conductivity(**p) if physics_kind == "diffusion" else hf.IsotropicElastic(**p)
        for name, p in params.items()
    }
    spec = hf.RVESpec("file", dim, path=str(path))
    hf.homogenize(
        spec, physics, materials, check=False
    )  # warm the JIT cache (compiled once per install)
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        run = hf.homogenize(spec, physics, materials, check=False)
        if time.perf_counter() - start < best:
            best, result = time.perf_counter() - start, run
    return result.tensor, best, {"dofs": result.dofs, **result.timings}


def sfepy(
    path: Path, dim: int, physics_kind: str, params: dict, repeat: int
) -> tuple[np.ndarray, float, dict]:
    args = [
        str(SFEPY_PYTHON),
        str(HERE / "sfepy_cell.py"),
        str(path),
        "--physics",
        physics_kind,
        "--dim",
        str(dim),
    ]
    for phase in ("matrix", "inclusion"):
        args += [f"--{phase}", ",".join(f"{k}={v}" for k, v in params[phase].items())]
    best, data = np.inf, {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "sfepy.json"
            subprocess.run([*args, "--json", str(out)], check=True, capture_output=True, text=True)
            run = json.loads(out.read_text())
        if run["timings"]["total"] < best:
            best, data = run["timings"]["total"], run
    return (
        np.asarray(data["tensor"]),
        best,
        {"dofs": data.get("dofs"), "solver": data.get("solver"), **data["timings"]},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="ABCD")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours (best taken)")
    parser.add_argument("--repeat-sfepy", type=int, default=2, help="runs of SfePy (best taken)")
    parser.add_argument("--json", help="write the table as JSON")
    args = parser.parse_args()
    if not SFEPY_PYTHON.exists():
        sys.exit(f"SfePy venv not found at {SFEPY_PYTHON}; run: bash bench/sfepy_env.sh")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            spec, physics_kind, params = CASES[case]
            path = write_msh(spec, Path(tmp) / f"case_{case}.msh")
            C_ours, t_ours, info_ours = ours(path, spec.dim, physics_kind, params, args.repeat)
            C_sfepy, t_sfepy, info_sfepy = sfepy(
                path, spec.dim, physics_kind, params, args.repeat_sfepy
            )
            diff = float(np.abs(C_ours - C_sfepy).max() / np.abs(C_sfepy).max())
            rows[case] = {
                "physics": physics_kind,
                "dim": spec.dim,
                "mesh_size": spec.mesh_size,
                "ours_s": t_ours,
                "sfepy_s": t_sfepy,
                "speedup": t_sfepy / t_ours,
                "tensor_rel_diff": diff,
                "ours": info_ours,
                "sfepy": info_sfepy,
                "tensor": C_ours.tolist(),
            }
            print(
                f"{case}: {physics_kind:10} {spec.dim}D h=1/{round(1 / spec.mesh_size)} dofs {info_ours['dofs']:7d}  "
                f"ours {t_ours:7.3f} s  SfePy {t_sfepy:7.3f} s  speed-up {t_sfepy / t_ours:5.1f}x  "
                f"max|ΔC|/max|C| {diff:.1e}",
                flush=True,
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
