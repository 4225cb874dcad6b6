"""SfePy periodic homogenization of a gmsh RVE, for the comparison benchmark only.

Runs in its own venv (bench/sfepy_env.sh) and shares no code with hmm_fenics. The cell
problem is SfePy's standard first-order homogenization (HomogenizationApp with
ShapeDim(Dim) shape functions, CorrDim(Dim) periodic correctors, CoefDimDim / CoefSymSym),
P1 fields, periodic EPBCs matched by coordinates, corner fixed, ``ls.auto_direct``.

    python bench/sfepy_cell.py CELL.msh --physics elasticity --dim 2 \
        --matrix E=3,nu=0.35 --inclusion E=70,nu=0.2 --json out.json

Prints the tensor in the hmm_fenics layout (Mandel for elasticity) and the timings: wall
seconds from reading the mesh to the tensor (``total``), imports excluded.
"""

import argparse
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import meshio
import numpy as np

DESCRIPTION = """
import numpy as np
import sfepy.discrete.fem.periodic as per
import sfepy.homogenization.coefs_base as cb
from sfepy.homogenization.utils import define_box_regions
from sfepy.mechanics.matcoefs import stiffness_from_youngpoisson

filename_mesh = {mesh!r}
dim = {dim}
regions = {{"Y": "all", "Ym": "cells of group 1", "Yc": "cells of group 2"}}
regions.update(define_box_regions(dim, (0.0,) * dim, (1.0,) * dim))
functions = {{"match_x_plane": (per.match_x_plane,), "match_y_plane": (per.match_y_plane,),
              "match_z_plane": (per.match_z_plane,)}}
pairs = [("Left", "Right"), ("Bottom", "Top") if dim == 2 else ("Near", "Far"), ("Top", "Bottom")]
epbcs = {{f"periodic_{{x}}": (list(pairs[i]), {{"u.all": "u.all"}}, f"match_{{x}}_plane")
          for i, x in enumerate("xyz"[:dim])}}
all_periodic = list(epbcs)
ebcs = {{"fixed_u": ("Corners", {{"u.all": 0.0}})}}
integrals = {{"i": {order}}}
{physics}
options = {{"coefs": "coefs", "requirements": "requirements", "ls": "ls",
            "volume": {{"expression": "ev_volume.i.Y(u)"}}, "output_dir": {out!r},
            "coefs_filename": "coefs", "print_digits": 16}}
solvers = {{"ls": ("ls.auto_direct", {{"use_presolve": True}}),
            "newton": ("nls.newton", {{"i_max": 1, "eps_a": 1e-4}})}}
"""

ELASTICITY = """
materials = {{"mat": ({{"D": {{"Ym": stiffness_from_youngpoisson(dim, {E1}, {nu1}, plane="strain"),
                           "Yc": stiffness_from_youngpoisson(dim, {E2}, {nu2}, plane="strain")}}}},)}}
fields = {{"corrector": ("real", dim, "Y", 1)}}
variables = {{"u": ("unknown field", "corrector", 0), "v": ("test field", "corrector", "u"),
              "Pi": ("parameter field", "corrector", "u"),
              "Pi1": ("parameter field", "corrector", "(set-to-None)"),
              "Pi2": ("parameter field", "corrector", "(set-to-None)")}}
requirements = {{
    "pis": {{"variables": ["u"], "class": cb.ShapeDimDim}},
    "corrs": {{"requires": ["pis"], "ebcs": ["fixed_u"], "epbcs": all_periodic,
               "equations": {{"eq": "dw_lin_elastic.i.Y(mat.D, v, u) = - dw_lin_elastic.i.Y(mat.D, v, Pi)"}},
               "set_variables": [("Pi", "pis", "u")], "class": cb.CorrDimDim, "is_linear": True}},
}}
coefs = {{"C": {{"requires": ["pis", "corrs"], "expression": "dw_lin_elastic.i.Y(mat.D, Pi1, Pi2)",
                 "set_variables": [("Pi1", ("pis", "corrs"), "u"), ("Pi2", ("pis", "corrs"), "u")],
                 "class": cb.CoefSymSym}}, "filenames": {{}}}}
"""

DIFFUSION = """
materials = {{"mat": ({{"K": {{"Ym": {k1} * np.eye(dim), "Yc": {k2} * np.eye(dim)}}}},)}}
fields = {{"corrector": ("real", 1, "Y", 1)}}
variables = {{"u": ("unknown field", "corrector", 0), "v": ("test field", "corrector", "u"),
              "Pi": ("parameter field", "corrector", "u"),
              "Pi1": ("parameter field", "corrector", "(set-to-None)"),
              "Pi2": ("parameter field", "corrector", "(set-to-None)")}}
requirements = {{
    "pis": {{"variables": ["u"], "class": cb.ShapeDim}},
    "corrs": {{"requires": ["pis"], "ebcs": ["fixed_u"], "epbcs": all_periodic,
               "equations": {{"eq": "dw_diffusion.i.Y(mat.K, v, u) = - dw_diffusion.i.Y(mat.K, v, Pi)"}},
               "set_variables": [("Pi", "pis", "u")], "class": cb.CorrDim, "is_linear": True}},
}}
coefs = {{"K": {{"requires": ["pis", "corrs"], "expression": "dw_diffusion.i.Y(mat.K, Pi1, Pi2)",
                 "set_variables": [("Pi1", ("pis", "corrs"), "u"), ("Pi2", ("pis", "corrs"), "u")],
                 "class": cb.CoefDimDim}}, "filenames": {{}}}}
"""


def direct_solver() -> str:
    """The solver SfePy's ls.auto_direct picks: the first importable of MUMPS, UMFPACK, SuperLU."""
    try:
        import mumpspy  # noqa: F401

        return "ls.mumps (MUMPS via mumpspy)"
    except ImportError:
        pass
    try:
        import scikits.umfpack  # noqa: F401

        return "ls.scipy_umfpack"
    except ImportError:
        return "ls.scipy_superlu"


def parse_phase(text: str) -> dict:
    return {k: float(v) for k, v in (item.split("=") for item in text.split(","))}


def to_mandel(C: np.ndarray, dim: int) -> np.ndarray:
    """SfePy's symmetric storage (11, 22, [33,] 12[, 13, 23]) of tensor components → Mandel."""
    order = [0, 1, 2] if dim == 2 else [0, 1, 2, 5, 4, 3]  # Mandel: 11, 22, 33, 23, 13, 12
    scale = np.array(
        [1, 1, np.sqrt(2)] if dim == 2 else [1, 1, 1, np.sqrt(2), np.sqrt(2), np.sqrt(2)]
    )
    C = C[np.ix_(order, order)]
    return C * np.outer(scale, scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mesh")
    parser.add_argument("--physics", choices=["diffusion", "elasticity"], required=True)
    parser.add_argument("--dim", type=int, choices=[2, 3], required=True)
    parser.add_argument("--matrix", required=True)
    parser.add_argument("--inclusion", required=True)
    parser.add_argument("--json")
    parser.add_argument(
        "--integral-order",
        type=int,
        default=2,
        help="quadrature order (2 is exact for P1 on affine cells; raise it for distorted hexahedra)",
    )
    args = parser.parse_args()
    # SfePy starts a multiprocessing manager at import: import it under the main guard only.
    t_import = time.perf_counter()
    from sfepy.base.base import Struct
    from sfepy.base.conf import ProblemConf, get_standard_keywords
    from sfepy.homogenization.homogen_app import HomogenizationApp

    t_import = time.perf_counter() - t_import
    m, i = parse_phase(args.matrix), parse_phase(args.inclusion)
    with tempfile.TemporaryDirectory() as tmp:
        # Format adapter, not timed: SfePy reads cell groups from a medit .mesh natively.
        msh = meshio.read(args.mesh)
        kinds = ("triangle", "quad") if args.dim == 2 else ("tetra", "hexahedron")
        kind = next(c.type for c in msh.cells if c.type in kinds)  # one cell type per mesh
        groups = np.concatenate(
            [
                d
                for d, c in zip(msh.cell_data["gmsh:physical"], msh.cells, strict=True)
                if c.type == kind
            ]
        )
        cells = np.concatenate([c.data for c in msh.cells if c.type == kind])
        used = np.unique(cells)
        renumber = np.full(len(msh.points), -1)
        renumber[used] = np.arange(len(used))
        mesh_file = str(Path(tmp) / "cell.mesh")
        meshio.write(
            mesh_file,
            meshio.Mesh(
                msh.points[used, : args.dim],
                [(kind, renumber[cells])],
                cell_data={"medit:ref": [groups]},
            ),
        )
        physics = (
            ELASTICITY.format(E1=m["E"], nu1=m["nu"], E2=i["E"], nu2=i["nu"])
            if args.physics == "elasticity"
            else DIFFUSION.format(k1=m["k"], k2=i["k"])
        )
        desc = Path(tmp) / "problem.py"
        desc.write_text(
            textwrap.dedent(
                DESCRIPTION.format(
                    mesh=mesh_file,
                    dim=args.dim,
                    physics=physics,
                    out=str(Path(tmp) / "output"),
                    order=args.integral_order,
                )
            )
        )
        required, other = get_standard_keywords()
        required.remove("equations")
        options = Struct(output_filename_trunk=None, save_restart=None, load_restart=None)
        start = time.perf_counter()
        conf = ProblemConf.from_file(str(desc), required, other, verbose=False)
        app = HomogenizationApp(conf, options, "homogen:")
        coefs = app()
        total = time.perf_counter() - start
        name = "C" if args.physics == "elasticity" else "K"
        C = np.asarray(getattr(coefs, name))
        n_dofs = app.problem.fields["corrector"].n_nod * (
            args.dim if args.physics == "elasticity" else 1
        )
    tensor = to_mandel(C, args.dim) if args.physics == "elasticity" else C
    np.set_printoptions(precision=8, suppress=True, linewidth=160)
    print(tensor)
    result = {
        "tensor": tensor.tolist(),
        "notation": "Mandel" if args.physics == "elasticity" else "vector",
        "physics": args.physics,
        "dim": args.dim,
        "dofs": int(n_dofs),
        "solver": direct_solver(),
        "timings": {"import": t_import, "total": total},
    }
    print(json.dumps({k: v for k, v in result.items() if k != "tensor"}))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
