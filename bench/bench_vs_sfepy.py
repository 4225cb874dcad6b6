"""hmm_fenics ``homogenize`` against SfePy's periodic homogenization on the same gmsh meshes.

Cases (P1, periodic fluctuation, same .msh file for both codes):
  A  2D disk f = 0.4, diffusion, k 1 / 10                  (h = 1/128)
  B  same cell, plane strain, E 3 / 70, nu 0.35 / 0.2      (h = 1/128)
  C  3D sphere f = 0.2, elasticity with B's materials       (h = 1/24)
  D  3D sphere f = 0.2, diffusion, k 1 / 10                 (h = 1/24)

Times are wall seconds from reading the mesh file to the tensor, imports excluded, best of
``--repeat`` runs each; SfePy runs in its own venv (``bench/sfepy_env.sh``).

``--whole-process`` times instead the whole processes, launch to exit: ``hmm-fenics homogenize
CELL.toml --json OUT`` (the cell file names the shared ``.msh``) against ``sfepy_cell.py
CELL.msh --json OUT`` (imports, its medit copy of the mesh and the JSON included), in rotating
order, ``--repeat`` rounds after one warm-up of each. Wall and CPU seconds (user + system of
the process and its children) are recorded; the ratios are medians of the per-round ratios,
so that a machine shared with other jobs slows both sides alike. CPU time is the steadier
figure on a loaded machine. ``--baseline DIR`` adds a third contestant: ``hmm-fenics`` run
from another source tree (e.g. ``git archive`` of an older commit), for before/after. With
``--cold`` our cell file describes the generated cell instead of naming the file, and every run
starts from an empty mesh cache: ours meshes it with gmsh, SfePy still reads the mesh file.

    bash bench/sfepy_env.sh
    python bench/bench_vs_sfepy.py [--cases ABCD] [--json bench/results/vs_sfepy.json]
    python bench/bench_vs_sfepy.py --whole-process --cases AB --repeat 7 [--baseline DIR] [--cold]
"""

import argparse
import json
import os
import resource
import shutil
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
    args = sfepy_args(path, dim, physics_kind, params)
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


def sfepy_args(path: Path, dim: int, physics_kind: str, params: dict) -> list[str]:
    """The command line of ``sfepy_cell.py`` for one case."""
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
    return args


def cell_toml(
    path: Path, dim: int, physics_kind: str, params: dict, spec: "hf.RVESpec | None" = None
) -> str:
    """A cell file for ``hmm-fenics homogenize``: the shared mesh ``path``, or ``spec`` to mesh."""
    lines = ["[rve]", 'kind = "file"', f"dim = {dim}", f"path = {str(path)!r}"]
    if spec is not None:
        lines[1:] = [f"kind = {spec.kind!r}", f"dim = {dim}", f"fraction = {spec.fraction!r}"]
        lines.append(f"mesh_size = {spec.mesh_size!r}")
    lines.append("[physics]")
    lines.append(f"kind = {physics_kind!r}")
    if physics_kind == "elasticity" and dim == 2:
        lines.append('plane = "strain"')
    for phase, values in params.items():
        lines += [f"[materials.{phase}]", *(f"{k} = {v!r}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, children included) of one process, launch to exit.

    ``HMM_FENICS_CACHE = "fresh"`` in ``env`` runs it with an empty mesh cache of its own.
    """
    fresh = env.get("HMM_FENICS_CACHE") == "fresh"
    cache = tempfile.mkdtemp() if fresh else None
    if cache is not None:
        env = {**env, "HMM_FENICS_CACHE": cache}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    if cache is not None:
        shutil.rmtree(cache)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def whole_process(
    path: Path,
    spec: "hf.RVESpec",
    physics_kind: str,
    params: dict,
    repeat: int,
    baseline: str | None,
    cold: bool,
) -> dict[str, object]:
    """Launch-to-exit times of both codes (and a baseline tree), in rotating order.

    ``cold``: ours meshes ``spec`` itself, with an empty mesh cache every run (SfePy still
    reads the mesh file).
    """
    dim = spec.dim
    console = Path(sys.executable).with_name("hmm-fenics")
    ours_cmd = [str(console)] if console.exists() else [sys.executable, "-m", "hmm_fenics.cli"]
    toml = path.with_suffix(".toml")
    toml.write_text(cell_toml(path, dim, physics_kind, params, spec if cold else None))
    out = {who: path.with_suffix(f".{who}.json") for who in ("ours", "sfepy", "baseline")}

    def homogenize(who: str) -> list[str]:
        # an older tree may lack the console entry point the installed script names; -P: the
        # tree on PYTHONPATH, not the working directory's, provides hmm_fenics
        command = [sys.executable, "-P", "-m", "hmm_fenics.cli"] if who == "baseline" else ours_cmd
        return [*command, "homogenize", str(toml), "--json", str(out[who]), "--overwrite", "-q"]

    # as on a user's machine, Python may cache bytecode: with PYTHONDONTWRITEBYTECODE set (as
    # in some containers), our editable install would be compiled again at every start, ~0.03 s,
    # while SfePy's site-packages hold bytecode compiled at install
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["OMP_NUM_THREADS"] = "1"
    ours_env = {**env, "HMM_FENICS_CACHE": "fresh"} if cold else env
    runs = {
        "ours": (homogenize("ours"), ours_env),
        "sfepy": ([*sfepy_args(path, dim, physics_kind, params), "--json", str(out["sfepy"])], env),
    }
    if baseline:
        runs["baseline"] = (homogenize("baseline"), {**ours_env, "PYTHONPATH": baseline})
    wall: dict[str, list[float]] = {who: [] for who in runs}
    cpu: dict[str, list[float]] = {who: [] for who in runs}
    names = list(runs)
    for round_ in range(repeat + 1):  # round 0 warms the JIT and file caches, not counted
        for k in range(len(names)):
            who = names[(round_ + k) % len(names)]
            w, c = _timed(*runs[who])
            if round_:
                wall[who].append(w)
                cpu[who].append(c)
    C = {who: np.asarray(json.loads(out[who].read_text())["tensor"]) for who in runs}
    row: dict[str, object] = {
        "command": " ".join(runs["ours"][0]),
        "tensor_rel_diff": float(np.abs(C["ours"] - C["sfepy"]).max() / np.abs(C["sfepy"]).max()),
    }
    for who in runs:
        row[f"{who}_wall_s"], row[f"{who}_cpu_s"] = wall[who], cpu[who]
        row[f"{who}_wall_median_s"] = float(np.median(wall[who]))
        row[f"{who}_cpu_median_s"] = float(np.median(cpu[who]))
    pairs = [(who, "ours") for who in runs if who != "ours"]
    if baseline:
        pairs.append(("sfepy", "baseline"))
    for slow, fast in pairs:  # how many times longer, per round, then the median
        for kind, t in (("wall", wall), ("cpu", cpu)):
            ratios = np.asarray(t[slow]) / np.asarray(t[fast])
            row[f"{slow}_over_{fast}_{kind}"] = float(np.median(ratios))
            row[f"{slow}_over_{fast}_{kind}_range"] = [float(ratios.min()), float(ratios.max())]
    return row


def main_whole_process(
    cases: str, repeat: int, out: str | None, baseline: str | None, cold: bool
) -> None:
    """The ``--whole-process`` table."""
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            spec, physics_kind, params = CASES[case]
            path = write_msh(spec, Path(tmp) / f"case_{case}.msh")
            row = whole_process(path, spec, physics_kind, params, repeat, baseline, cold)
            rows[case] = {"physics": physics_kind, "dim": spec.dim, **row}
            line = (
                f"{case}: {physics_kind:10} {spec.dim}D h=1/{round(1 / spec.mesh_size)}  medians of "
                f"{repeat}: ours {row['ours_wall_median_s']:.2f} s wall / "
                f"{row['ours_cpu_median_s']:.2f} s CPU, SfePy {row['sfepy_wall_median_s']:.2f} / "
                f"{row['sfepy_cpu_median_s']:.2f}; speed-up {row['sfepy_over_ours_wall']:.1f}x wall "
                f"(rounds {row['sfepy_over_ours_wall_range'][0]:.1f}–"
                f"{row['sfepy_over_ours_wall_range'][1]:.1f}), {row['sfepy_over_ours_cpu']:.1f}x CPU"
            )
            if baseline:
                line += (
                    f"; baseline {row['baseline_wall_median_s']:.2f} s wall "
                    f"({row['baseline_over_ours_wall']:.2f}x ours, CPU "
                    f"{row['baseline_over_ours_cpu']:.2f}x); SfePy / baseline "
                    f"{row['sfepy_over_baseline_wall']:.1f}x wall, {row['sfepy_over_baseline_cpu']:.1f}x CPU"
                )
            print(line + f"  max|ΔC|/max|C| {row['tensor_rel_diff']:.1e}", flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="ABCD")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours (best taken)")
    parser.add_argument("--repeat-sfepy", type=int, default=2, help="runs of SfePy (best taken)")
    parser.add_argument("--json", help="write the table as JSON")
    parser.add_argument(
        "--whole-process",
        action="store_true",
        help="time both processes launch to exit, alternating, --repeat rounds (medians)",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="with --whole-process: also time hmm-fenics with PYTHONPATH=DIR (another version)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="with --whole-process: hmm-fenics meshes the cell itself (empty mesh cache each run)",
    )
    args = parser.parse_args()
    if not SFEPY_PYTHON.exists():
        sys.exit(f"SfePy venv not found at {SFEPY_PYTHON}; run: bash bench/sfepy_env.sh")
    if args.whole_process:
        main_whole_process(args.cases, args.repeat, args.json, args.baseline, args.cold)
        return
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
