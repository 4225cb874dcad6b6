"""Property-based fuzzing of cell files and run files (validation only, no meshing).

Valid files are mutated (wrong types, out-of-range and non-finite numbers, missing and
extra keys and tables, wrong lengths, values moved between keys), written as TOML text,
read back and validated as ``load_cell_config`` / ``load_run_config`` do (in memory: file
system calls would dominate), followed by the checks that run before any mesh is built
(the job's warnings, the element budget, the inclusion layout).
Every file must either load or raise ``InputError`` (exit code 2) with a message that
names a key; any other exception is a defect. A derandomized sample runs in ``make test``;
``-m slow`` runs a long one.
"""

import copy
import datetime as dt
import math
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hmm_fenics.config import load_cell_config, parse_cell_config
from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import LENGTHS, estimated_cells
from hmm_fenics.run.checks import (
    cell_resonance,
    coarse_micro_mesh,
    dirichlet_conflict,
)
from hmm_fenics.run.schema import (
    EXAMPLE,
    TOP_LEVEL,
    load_run_config,
    parse_run_config,
)
from hmm_fenics.rve.geometry import primitives

CELLS = [
    """
[rve]
kind = "inclusion"
dim = 2
fraction = 0.3
mesh_size = 0.05
shape = "ellipse"
aspect = 1.5
angle = 30.0
center = [0.4, 0.5]
refine = 2.0
[physics]
kind = "diffusion"
degree = 2
[materials.matrix]
k = 1.0
[materials.inclusion]
k = 10.0
p = 3.0
g0 = 1.0
[solver]
pc_type = "lu"
[micro]
bc = "oversampling"
oversampling = 3
""",
    """
[rve]
kind = "random"
dim = 2
fraction = 0.3
mesh_size = 0.04
count = 8
radius_spread = 0.1
min_gap = 0.02
seed = 3
cell = [1.0, 1.0]
[physics]
kind = "elasticity"
plane = "stress"
[materials.matrix]
E = 3.0
nu = 0.35
[materials.inclusion]
void = true
""",
    """
[rve]
kind = "fibers"
dim = 3
fraction = 0.3
lattice = "hex"
mesh_size = 0.2
[physics]
kind = "elasticity"
[materials.matrix]
E = 3.0
nu = 0.35
eps0 = 0.01
n = 0.5
[materials.inclusion]
E = 70.0
nu = 0.2
""",
    """
[rve]
kind = "checkerboard"
dim = 2
[physics]
kind = "diffusion"
[materials.matrix]
k = 1.0
[materials.inclusion]
k = 5.0
""",
    """
[rve]
kind = "square-array"
dim = 2
n = 2
fraction = 0.2
mesh_size = 0.05
[physics]
kind = "diffusion"
[materials.matrix]
k = 1.0
[materials.inclusion]
k = 5.0
""",
    """
[rve]
kind = "hex-array"
dim = 2
fraction = 0.3
mesh_size = 0.05
[physics]
kind = "elasticity"
plane = "strain"
[materials.matrix]
law = "j2"
E = 70.0
nu = 0.33
sigma_y = 0.3
H_iso = 1.0
H_kin = 0.5
[materials.inclusion]
law = "elastic"
E = 400.0
nu = 0.2
""",
    """
[rve]
kind = "laminate"
dim = 3
fraction = 0.5
mesh_size = 0.2
[physics]
kind = "elasticity"
[materials.matrix]
law = "maxwell"
E = 1.0
nu = 0.35
prony = [[2.0, 0.1], [1.0, 10.0], [0.5, 1000.0]]
[materials.inclusion]
law = "j2"
E = 70.0
nu = 0.3
sigma_y = 0.2
""",
]

RUN_DIFFUSION = """
[macro]
geometry = "rectangle"
mesh_size = 0.25
L = 2.0
H = 1.0
degree = 2
quadrature_degree = 3
[dirichlet]
left = 1.0
right = 0.0
[neumann]
top = 0.5
[loading]
steps = 2
source = 1.0
[rve]
kind = "laminate"
dim = 2
fraction = 0.3
mesh_size = 0.1
[physics]
kind = "diffusion"
[materials.matrix]
k = 1.0
[materials.inclusion]
k = 10.0
[micro]
model = "cell"
period = 0.01
[micro.graded]
parameter = "fraction"
axis = "x"
start = [0.0, 0.2]
end = [2.0, 0.4]
step = 0.05
[solver]
rtol = 1e-8
atol = 1e-12
max_iterations = 10
schedule = "balanced"
[petsc]
hmm_macro_pc_type = "lu"
hmm_micro_ksp_rtol = 1e-10
[output]
fields = "vtx"
snapshots = [[0.5, 0.5], [1.5, 0.5]]
png = false
"""

RUN_BOX = """
[macro]
geometry = "box"
mesh_size = 0.5
W = 2.0
[dirichlet]
left = [0.0, 0.0, 0.0]
right = [0.01, "free", "free"]
[rve]
kind = "cubic-array"
dim = 3
lattice = "bcc"
fraction = 0.2
mesh_size = 0.2
[physics]
kind = "elasticity"
[materials.matrix]
E = 3.0
nu = 0.35
[materials.inclusion]
E = 70.0
nu = 0.2
[micro]
model = "effective"
bc = "neumann"
[output]
snapshots = "peak"
"""

RUN_PLASTIC = """
[macro]
geometry = "plate-with-hole"
mesh_size = 0.2
quadrature_degree = 1
[dirichlet]
left = [0.0, "free"]
bottom = ["free", 0.0]
right = [-0.004, "free"]
[loading]
path = [[0, 0], [1, 1], [2, 0], [3, 1]]
steps = [4, 2, 3]
max_cuts = 4
[rve]
kind = "inclusion"
dim = 2
fraction = 0.2
mesh_size = 0.1
[physics]
kind = "elasticity"
[materials.matrix]
law = "j2"
E = 70.0
nu = 0.33
sigma_y = 0.25
H_iso = 1.0
H_kin = 1.0
[materials.inclusion]
E = 400.0
nu = 0.2
[micro]
shortcut = false
linear_solver = "krylov"
[solver]
schedule = "balanced"
[output]
curve = ["right", 0]
"""

RUN_POWER_LAW = """
[macro]
geometry = "l-shape"
mesh_size = 0.2
[dirichlet]
bottom = [0.0, 0.0]
top = ["free", 0.01]
[loading]
steps = 3
[rve]
kind = "inclusion"
dim = 2
fraction = 0.3
mesh_size = 0.1
[physics]
kind = "elasticity"
[materials.matrix]
E = 3.0
nu = 0.35
eps0 = 0.005
n = 0.3
[materials.inclusion]
E = 70.0
nu = 0.2
[micro]
predict = true
tangent_reuse = 0.01
"""

RUNS = [EXAMPLE, RUN_DIFFUSION, RUN_BOX, RUN_PLASTIC, RUN_POWER_LAW]


def image_cell() -> str:
    """A valid image cell file; its picture (8 × 6 pixels, grey 0 and 255) is made once."""
    picture = Path(tempfile.gettempdir()) / "hmm_fenics_fuzz" / "cell.png"
    if not picture.is_file():
        picture.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.zeros((6, 8), dtype=np.uint8)
        pixels[:, :3] = 255
        partial = picture.with_suffix(f".{os.getpid()}.png")
        Image.fromarray(pixels).save(partial)
        partial.replace(picture)  # concurrent ranks never read a partial file
    return f"""
[rve]
kind = "image"
dim = 2
path = "{picture}"
voxel_size = 0.125
mesh = "simplex"
[rve.labels]
matrix = 0
inclusion = [255]
[physics]
kind = "elasticity"
[materials.matrix]
E = 3.0
nu = 0.3
[materials.inclusion]
E = 70.0
nu = 0.2
"""


CELLS.append(image_cell())

WORDS = [
    # every enumerated string of the schema, so that mutations reach the other branches
    *("inclusion", "square-array", "hex-array", "checkerboard", "laminate", "random"),
    *("file", "cubic-array", "fibers", "disk", "ellipse", "sphere", "ellipsoid"),
    *("simple", "bcc", "fcc", "square", "hex", "diffusion", "elasticity", "strain", "stress"),
    *("rectangle", "box", "plate-with-hole", "l-shape", "free", "cell", "effective"),
    *("fraction", "aspect", "angle", "x", "y", "z", "owner", "balanced", "xdmf", "vtx"),
    *("none", "peak", "lu", "cholesky", "missing.msh", "left", "right", "top", "hole"),
    *("elastic", "j2", "maxwell", "law", "prony", "sigma_y", "H_iso", "H_kin"),
    *("path", "steps", "dt", "max_cuts", "curve", "image", "voxel", "simplex", "labels"),
    *("shortcut", "linear_solver", "direct", "krylov", "predict", "tangent_reuse"),
]
NUMBERS = [0, 1, -1, 2, 3, 4, 7, 1000, 10**6, 2**62 + 1, -(2**63), 2**63 - 1]
FLOATS = [0.0, -0.0, 0.5, 0.25, 1.0, -1.0, 1.5, 1e-300, 5e-324, 1e300, -1e300, 0.4999999]
FLOATS += [math.nan, math.inf, -math.inf]

scalars = st.one_of(
    st.booleans(),
    st.sampled_from(NUMBERS),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2100, 1, 1)),
)
key_names = st.one_of(st.sampled_from(sorted(TOP_LEVEL) + WORDS), st.text(min_size=1, max_size=5))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key_names, inner, max_size=3),
    max_leaves=6,
)


def quoted(text: str) -> str:
    """A TOML basic string (control characters escaped, the rest verbatim UTF-8)."""
    body = "".join(
        f"\\{c}" if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 32 or ord(c) == 127 else c
        for c in text
    )
    return f'"{body}"'


def toml(value: Any) -> str:
    """TOML text of a value (tables inline), so that any parsed document can be written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{quoted(str(k))} = {toml(v)}" for k, v in value.items()) + "}"


def document(value: dict[str, Any]) -> str:
    return "".join(f"{quoted(k)} = {toml(v)}\n" for k, v in value.items())


def paths(node: Any, at: tuple = ()) -> list[tuple]:
    """Every place in a document: table keys and array items."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        found.append((*at, key))
        if isinstance(value, dict | list):
            found += paths(value, (*at, key))
    return found


def parent(doc: dict[str, Any], path: tuple) -> Any:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def mutated(draw: Any, sources: list[str]) -> dict[str, Any]:
    """A valid document with one to three mutations."""
    doc = tomllib.loads(draw(st.sampled_from(sources)))
    for _ in range(draw(st.integers(1, 3))):
        places = paths(doc)
        kind = draw(
            st.sampled_from(["replace", "number", "delete", "add", "lengthen", "move", "table"])
        )
        if kind == "number":  # most keys are numbers: aim at them
            numbers = [p for p in places if isinstance(parent(doc, p)[p[-1]], int | float)]
            places = numbers or places
        path = draw(st.sampled_from(places)) if places else None
        if path is None or kind == "table":  # an extra or a replaced top-level table
            doc[draw(key_names)] = draw(values)
            continue
        home, key = parent(doc, path), path[-1]
        old = home[key]
        if kind == "replace":
            home[key] = draw(values)
        elif kind == "number":
            home[key] = draw(st.sampled_from([math.nan, math.inf, -math.inf, *FLOATS, *NUMBERS]))
            if isinstance(old, int | float) and not isinstance(old, bool) and draw(st.booleans()):
                home[key] = old * draw(st.sampled_from([-1, 0, 2, 1e-9, 1e9, 0.999, 1.001]))
        elif kind == "delete":
            del home[key]
        elif kind == "add":
            target = old if isinstance(old, dict) else home
            if isinstance(target, dict):
                target[draw(key_names)] = draw(values)
            else:
                target.append(draw(values))
        elif kind == "lengthen":
            if isinstance(old, list):
                if old and draw(st.booleans()):
                    old.pop()
                else:
                    old.append(draw(scalars))
            else:
                home[key] = [old] * draw(st.integers(0, 4))
        else:  # another place's value here
            other = draw(st.sampled_from(places))
            home[key] = copy.deepcopy(parent(doc, other)[other[-1]])
    return doc


TOP = "|".join(sorted(TOP_LEVEL))
NAMES_A_KEY = re.compile(
    rf"\b(?:{TOP})[.\[\]]|(?:^|error: )(?:{TOP}) = |\[(?:{TOP})\]|'[^']*'\]|--\w+"
)
"""A key path (``rve.center``, ``materials.inclusion.k``, ``[dirichlet]``, ``rve = nan`` also
after the CLI's ``error:``), or a list of key names (``unknown key(s) ['foo']``)."""


def finite(value: Any, where: str = "config") -> None:
    """Every number of a loaded config is finite (dataclasses, tables, tuples)."""
    if isinstance(value, float):
        assert math.isfinite(value), f"{where} = {value} was accepted"
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            if name != "data":  # the raw TOML, echoed in results
                finite(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            finite(item, f"{where}[{i}]")


def check(text: str, parse: Any) -> None:
    """Parse and validate, then the checks before meshing; only InputError naming a key may
    escape, and what loads is finite with a centre in the cell."""
    try:
        config = parse(tomllib.loads(text), Path.cwd())
        finite(config)
        rve = config.cell.rve if hasattr(config, "cell") else config.rve
        if rve.kind not in ("file", "image"):
            center, lengths = rve.center, rve.lengths
            assert len(center) == rve.dim and all(
                0 <= x <= L for x, L in zip(center, lengths, strict=False)
            )
            coarse_micro_mesh(rve)
            if rve.kind != "random":  # a random packing is work (RSA trials), not validation
                primitives(rve)
        macro = getattr(config, "macro", None)
        if macro is not None:
            dirichlet_conflict(macro.geometry, config.dirichlet)
            if macro.geometry != "file":
                estimated_cells(macro.geometry, macro.mesh_size, LENGTHS | macro.lengths)
                cell_resonance(config.period, macro.mesh_size)
        if getattr(config, "graded", None) is not None:
            config.graded.spec_at(rve, [1e300, -1e300, 0.0])
    except InputError as err:
        message = str(err)
        assert NAMES_A_KEY.search(message), f"the message names no key: {message!r}"


def fuzz(kind: str, examples: int, derandomize: bool) -> None:
    """Mutate, write as TOML text, read it back (as ``load_*_config`` does), validate."""
    sources, parse = (CELLS, parse_cell_config) if kind == "cell" else (RUNS, parse_run_config)

    @settings(
        max_examples=examples,
        derandomize=derandomize,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(doc=mutated(sources))
    def run(doc: dict[str, Any]) -> None:
        check(document(doc), parse)

    run()


def test_the_sources_are_valid(tmp_path):
    """The unmutated documents load, written by ``document`` (the writer round-trips)."""
    for i, text in enumerate(CELLS + RUNS):
        data = tomllib.loads(text)
        path = tmp_path / f"{i}.toml"
        path.write_text(document(data))
        assert tomllib.loads(path.read_text()) == data
        (load_cell_config if text in CELLS else load_run_config)(path)


@pytest.mark.serial
@pytest.mark.parametrize("kind", ["cell", "run"])
def test_fuzz_sample(kind):
    """A fixed sample of 500 mutations of each kind (a few seconds each)."""
    fuzz(kind, 500, derandomize=True)


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.parametrize("kind", ["cell", "run"])
def test_fuzz_long(kind):
    """Thousands of random mutations of each kind."""
    fuzz(kind, 5000, derandomize=False)


class ReachedWork(Exception):
    """Raised instead of homogenizing: the file passed every check the CLI makes first."""


@pytest.mark.serial
def test_fuzz_through_the_command_line(tmp_path, monkeypatch):
    """Mutated cell files through ``hmm-fenics homogenize``: exit 2 naming a key, or work.

    The CLI's own handling is what a user meets (exit codes, no traceback); the work itself
    is replaced by a sentinel so that valid mutations cost nothing.
    """
    import contextlib
    import io

    import hmm_fenics.coupling.homogenize
    from hmm_fenics.cli import main

    def sentinel(*args, **kwargs):
        raise ReachedWork("reached the solve")

    monkeypatch.setattr(hmm_fenics.coupling.homogenize, "homogenize", sentinel)
    path = tmp_path / "cell.toml"

    @settings(max_examples=150, derandomize=True, deadline=None, database=None)
    @given(doc=mutated(CELLS))
    def run(doc: dict[str, Any]) -> None:
        path.write_text(document(doc))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["homogenize", str(path), "-q"])
        text = err.getvalue()
        assert "Traceback" not in text, text
        if "ReachedWork" in text:
            return
        assert code == 2, text
        assert NAMES_A_KEY.search(text), text

    run()
