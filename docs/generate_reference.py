"""The run-file and cell-file reference page, generated from the code at every docs build.

Nothing here is written by hand about keys: the tables come from what the parsers accept and
what the schema says about them, so the page cannot drift from the code.

- Which keys exist, and which are required: recorded from the parsers themselves. Every
  ``check_keys(where, table, required, optional)`` call that ``parse_run_config`` and
  ``parse_cell_config`` make is intercepted while they parse probe files (the schema's
  ``EXAMPLE``, and the same with each commented-out line switched on), so a key added to a
  parser appears here without anyone listing it. Phase keys (``[materials.<phase>]``) come
  from ``material_from_dict``'s own refusal of an unknown key and ``HISTORY_KEYS``.
- What a key means and its example value: the comments of ``EXAMPLE``
  (``hmm_fenics/run/schema.py``), of the cell-file example in ``hmm_fenics/config.py`` and,
  for ``[rve]``, the ``Args`` of ``RVESpec``'s docstring and its field defaults.

A key the parsers accept that none of these describe is listed with :data:`UNDESCRIBED`;
``tests/test_docs.py`` fails on it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

TABLE_COMMENTS: dict[str, str] = {}
"""Table name → its header comment in the example (filled by :func:`reference_markdown`)."""
ATTRIBUTES: dict[str, str] = {}
"""Run-file key → the ``RunConfig`` docstring's word on it: the last source of a meaning."""
UNDESCRIBED = "(not described in the schema: add it to EXAMPLE)"
"""The meaning given to an accepted key that no schema text describes."""


class Entry(NamedTuple):
    """One key line of an example file: ``key = value  # comment``."""

    table: str
    key: str
    value: str
    comment: str
    commented: bool


class Table(NamedTuple):
    """One table of an example file: its header comment and its key lines."""

    name: str
    comment: str
    optional: bool
    entries: list[Entry]
    lines: list[str]


_HEADER = re.compile(r"^(#\s*)?\[([\w.]+)\]\s*(#\s?(.*))?$")
_KEY = re.compile(r"^(#\s*)?([A-Za-z_][\w]*)\s*=\s*(.*?)\s*(#\s?(.*))?$")


def _split_value_comment(rest: str) -> tuple[str, str]:
    """``value  # comment`` → (value, comment), a ``#`` inside a string kept in the value."""
    quote = None
    for i, char in enumerate(rest):
        if char in "\"'":
            quote = None if quote == char else (quote or char)
        elif char == "#" and quote is None:
            return rest[:i].strip(), rest[i + 1 :].strip()
    return rest.strip(), ""


def parse_example(text: str) -> tuple[str, list[Table]]:
    """The tables of an annotated TOML example, in order, and the comment above them.

    Lines ``[table]  # comment`` and ``key = value  # comment`` are read as such, also when
    commented out (``# [table]``, ``# key = value``: optional, not set by default); a comment
    line that follows, indented under the comment column or starting ``#   ``, continues the
    previous comment.
    """
    intro: list[str] = []
    tables: list[Table] = []
    current: Table | None = None
    last: Entry | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        header = _HEADER.match(stripped)
        if header:
            current = Table(header[2], (header[4] or "").strip(), bool(header[1]), [], [line])
            tables.append(current)
            last = None
            continue
        if current is None:
            if stripped.startswith("#"):
                intro.append(stripped.lstrip("#").strip())
            continue
        if stripped or current.lines[-1].strip():
            current.lines.append(line)
        body = stripped.lstrip("#").strip()
        key = _KEY.match(line)  # key lines start the line; indented ones continue comments
        if key and not body.startswith("("):
            value, comment = _split_value_comment(stripped.lstrip("#").split("=", 1)[1])
            last = Entry(current.name, key[2], value, comment, bool(key[1]))
            current.entries.append(last)
            continue
        if stripped.startswith("#") and last is not None:  # a continued comment
            more = stripped.lstrip("#").strip()
            if more.startswith("#"):
                more = more.lstrip("#").strip()
            if more:
                current.entries[-1] = last = last._replace(comment=f"{last.comment} {more}")
            continue
        if stripped.startswith("#") and current.entries == [] and body:
            current = current._replace(comment=f"{current.comment} {body}".strip())
            tables[-1] = current
    for i, table in enumerate(tables):
        while len(table.lines) > 1 and not table.lines[-1].strip():
            table.lines.pop()
        tables[i] = table
    return " ".join(intro).strip(), tables


def _uncommented(text: str, index: int) -> str:
    """``text`` with its ``index``-th commented key or table line switched on."""
    lines = text.splitlines()
    count = -1
    for i, line in enumerate(lines):
        stripped = line.strip()
        body = stripped.lstrip("#").strip()
        if line.startswith("#") and (_HEADER.match(body) or _KEY.match(line)):
            if body.startswith("("):
                continue
            count += 1
            if count == index:
                lines[i] = body.split(" #")[0]
                return "\n".join(lines)
    return ""


@contextmanager
def _recording(calls: dict[str, tuple[set[str], set[str]]]) -> Iterator[None]:
    """Intercept ``check_keys`` in every loaded hmm_fenics module that imported it."""
    import sys

    import hmm_fenics.config as config

    original = config.check_keys

    def record(where: str, table: dict[str, Any], required: set[str], optional: set[str]) -> None:
        known = calls.setdefault(where, (set(), set()))
        known[0].update(required)
        known[1].update(optional)
        original(where, table, required, optional)

    patched = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("hmm_fenics") and getattr(module, "check_keys", None) is original
    ]
    for module in patched:
        module.check_keys = record  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.check_keys = original  # type: ignore[attr-defined]


def _probe(text: str, parse: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Parse ``text`` and each variant with one commented line switched on; keys recorded."""
    calls: dict[str, tuple[set[str], set[str]]] = {}
    variants = [text]
    index = 0
    while variant := _uncommented(text, index):
        variants.append(variant)
        index += 1
    with _recording(calls):
        for variant in variants:
            try:
                parse(tomllib.loads(variant))
            except Exception:  # a probe may stop after recording its keys
                continue
    return calls


def accepted_keys() -> dict[str, dict[str, tuple[set[str], set[str]]]]:
    """Key path → (required, optional) keys, as the parsers check them, per file kind.

    Returns:
        ``{"run": {...}, "cell": {...}}``; ``""`` is the top level, ``"materials.<phase>"``
        the keys of a phase (see :func:`phase_keys`).
    """
    from hmm_fenics.config import DEFAULT_CELL, parse_cell_config
    from hmm_fenics.run.schema import EXAMPLE, parse_run_config

    here = Path.cwd()
    run = _probe(EXAMPLE, lambda data: parse_run_config(data, here))
    cell = _probe(_cell_example() or DEFAULT_CELL, lambda data: parse_cell_config(data, here))
    for keys in (run, cell):
        keys["materials.<phase>"] = (set(), phase_keys())
    return {"run": run, "cell": cell}


def phase_keys() -> set[str]:
    """Every key a ``[materials.<phase>]`` table accepts, for either physics and any law."""
    from hmm_fenics.errors import InputError
    from hmm_fenics.materials import HISTORY_KEYS, material_from_dict
    from hmm_fenics.physics import Diffusion, Elasticity

    keys = {"law", "void"}
    for required, optional in HISTORY_KEYS.values():
        keys |= required | optional
    for physics in (Diffusion(2), Elasticity(2)):
        try:
            material_from_dict("probe", {"zz_unknown": 1.0}, physics)
        except InputError as err:  # "unknown key(s) [...]; expected [...], plus [...] ..."
            keys |= set(re.findall(r"'(\w+)'", str(err).split("expected", 1)[1]))
    return keys - {"zz_unknown"}


def _cell_example() -> str:
    """The annotated cell-file example of ``hmm_fenics.config``'s docstring, dedented."""
    import hmm_fenics.config as config

    doc = config.__doc__ or ""
    block = doc.split("::", 1)[1] if "::" in doc else ""
    lines = []
    for line in block.splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip() + "\n"


def _docstring_section(doc: str, section: str) -> dict[str, str]:
    """A Google docstring's ``Args:``/``Attributes:``: name → text (continuations joined).

    An entry ``a, b, c: text`` gives each of the names the same text.
    """
    args: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == f"{section}:"), None)
    if start is None:
        return args
    names: list[str] = []
    first: int | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        first = indent if first is None else first
        if indent < first:
            break
        match = re.match(r"\s*([\w, ]+): (.*)", line)
        if match and indent == first:
            names = [name.strip() for name in match[1].split(",")]
            args.update(dict.fromkeys(names, match[2].strip()))
        else:
            args.update({name: f"{args[name]} {line.strip()}" for name in names})
    return args


def _rst(text: str) -> str:
    """Docstring reST (double backquotes) as Markdown, and ``|`` safe inside a table."""
    return text.replace("``", "`").replace("|", "\\|")


def _code(value: str) -> str:
    return f"`{value}`" if value else ""


def _names(comment: str, key: str) -> bool:
    """Whether ``comment`` names ``key`` as a word of its own."""
    return re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", comment) is not None


def _meaning(where: str, key: str, table: Table | None, extra: dict[str, str]) -> str:
    if key in extra:
        return extra[key]
    path = f"{where}.{key}" if where else key
    if path in TABLE_COMMENTS:  # a key that is a table of its own
        comment = TABLE_COMMENTS[path]
        return f"the table `[{path}]` (below)" + (f": {comment}" if comment else "")
    if table is not None:
        for entry in table.entries:
            if entry.key == key and entry.comment:
                return entry.comment

        # a key named in a comment that lists keys of the table ("lengths: L (x1), H (x2), W
        # (x3), R"; "or dt = 0.1"): the comment that names most of them. A word that only
        # occurs in prose ("(epsilon)") describes nothing.
        def listed(entry: Entry) -> int:
            others = sum(_names(entry.comment, o.key) for o in table.entries if o.key != key)
            keyed = re.search(rf"(?<![\w.]){re.escape(key)}\s*[(=]", entry.comment)
            return others + 1 if _names(entry.comment, key) and (others or keyed) else 0

        best = max(table.entries, key=listed, default=None)
        if best is not None and listed(best):
            return f"see `{best.key}`: {best.comment}"
    if key in ATTRIBUTES:
        return ATTRIBUTES[key]
    return UNDESCRIBED


def _defaults(where: str) -> dict[str, str]:
    """Defaults that the code states as dataclass fields, for the tables that have them."""
    from hmm_fenics.config import CellConfig
    from hmm_fenics.macro.mesh import LENGTHS
    from hmm_fenics.physics import Elasticity
    from hmm_fenics.run.schema import MacroConfig, RunConfig
    from hmm_fenics.rve.spec import RVESpec
    from hmm_fenics.stepping import MAX_CUTS

    source = {"macro": MacroConfig, "micro": RunConfig, "solver": RunConfig, "output": RunConfig}
    source |= {"rve": RVESpec, "physics": CellConfig}
    found: dict[str, Any] = {}
    for f in dataclasses.fields(source[where]) if where in source else ():
        if f.default is not dataclasses.MISSING and f.name not in ("path", "data", "cell"):
            found[f.name] = f.default
    if where == "physics":
        found["plane"] = inspect.signature(Elasticity).parameters["plane"].default
    if where == "loading":
        found["max_cuts"] = MAX_CUTS
    if where == "macro":
        found |= LENGTHS
    return {
        key: "unset" if value is None else repr(value).replace("'", '"')
        for key, value in found.items()
    }


def _key_table(
    where: str,
    keys: tuple[set[str], set[str]],
    table: Table | None,
    extra: dict[str, str],
) -> list[str]:
    required, optional = keys
    defaults = _defaults(where)
    examples = {e.key: e.value for e in table.entries} if table else {}
    rows = ["| key | required | default | example | meaning |", "|---|---|---|---|---|"]
    ordered = [e.key for e in table.entries] if table else []
    names = [k for k in ordered if k in required | optional]
    names += sorted((required | optional) - set(names))
    for key in names:
        default = "—" if key in required else _code(defaults.get(key, ""))
        meaning = _rst(_meaning(where, key, table, extra))
        rows.append(
            f"| `{key}` | {'yes' if key in required else ''} | {default} | "
            f"{_code(examples.get(key, ''))} | {meaning} |"
        )
    return rows


def _section(
    level: str,
    where: str,
    keys: dict[str, tuple[set[str], set[str]]],
    tables: dict[str, Table],
    extra: dict[str, dict[str, str]],
) -> list[str]:
    table = tables.get(where)
    title = f"`[{where}]`" if where else "Top level"
    out = [f"{level} {title}", ""]
    if table is not None and table.comment:
        out += [_rst(table.comment[0].upper() + table.comment[1:]), ""]
    if table is not None and table.optional:
        out += ["Optional table (commented out in the example).", ""]
    out += _key_table(where, keys[where], table, extra.get(where, {}))
    if table is not None:
        out += ["", "```toml", *table.lines, "```"]
    return [*out, ""]


FREE_FORM = {
    "dirichlet": "Keys are boundary names of the macro geometry (`rectangle`: left, right, "
    "bottom, top; `box`: also front, back; `plate-with-hole`: left, bottom, right, top, hole; "
    "`l-shape`: left, bottom, right, top, inner; `file`: the mesh's named groups). A value is a "
    'number (diffusion) or one entry per component (elasticity), `"free"` leaving a '
    "component unconstrained.",
    "neumann": "Keys are boundary names, as for `[dirichlet]`; a value is a flux (diffusion) "
    "or a traction vector (elasticity). A boundary in neither table is free.",
    "petsc": "Keys are PETSc options prefixed by the solver they go to: `hmm_macro_` (the "
    "macro Newton's linear solver) or `hmm_micro_` (every micro solve). Options on the command "
    "line win over the file; an option without one of these prefixes, or one no solver read, "
    "stops with exit code 2.",
    "cell.solver": "The older spelling of a cell file's `[petsc]`: PETSc options of the micro "
    'solver without their prefix (`hmm_micro_` is implied), e.g. `pc_type = "lu"`. Still read; '
    "a file with both tables, or with a run file's `[solver]` keys (rtol, atol, max_iterations, "
    "schedule) here, is refused.",
}


def reference_markdown() -> str:
    """The whole reference page (MyST Markdown)."""
    from hmm_fenics.run.schema import EXAMPLE
    from hmm_fenics.rve.spec import RVESpec

    keys = accepted_keys()
    intro, run_tables = parse_example(EXAMPLE)
    _, cell_tables = parse_example(_cell_example())
    run_by_name = {t.name: t for t in run_tables}
    TABLE_COMMENTS.clear()
    TABLE_COMMENTS.update({t.name: t.comment for t in (*cell_tables, *run_tables)})
    TABLE_COMMENTS.setdefault("materials", "one table per phase, `[materials.<phase>]`")
    cell_by_name = {t.name: t for t in cell_tables}
    from hmm_fenics.run.schema import RunConfig

    rve_args = _docstring_section(RVESpec.__doc__ or "", "Args")
    ATTRIBUTES.clear()
    ATTRIBUTES.update(_docstring_section(RunConfig.__doc__ or "", "Attributes"))
    phase_meaning = _phase_meanings()
    extra = {"rve": rve_args, "materials.<phase>": phase_meaning}
    for name, table in cell_by_name.items():  # cell comments fill what the run file leaves
        if name in run_by_name and name not in ("solver", "rve"):
            merged = run_by_name[name]
            have = {e.key for e in merged.entries if e.comment}
            extra.setdefault(name, {}).update(
                {e.key: e.comment for e in table.entries if e.comment and e.key not in have}
            )

    out = [
        "# Run-file and cell-file reference",
        "",
        "```{note}",
        "This page is generated from the code at every documentation build "
        "(`docs/generate_reference.py`): the keys are those the parsers accept, the comments "
        "and examples those of `hmm-fenics run --example` (`hmm_fenics/run/schema.py`) and of "
        "the cell-file example in `hmm_fenics/config.py`.",
        "```",
        "",
        "A **run file** (`hmm-fenics run CONFIG.toml`) is a cell file plus the macro problem; "
        "without `[macro]` it is a homogenization job. A **cell file** "
        "(`hmm-fenics homogenize CELL.toml`, `hmm-fenics rve CELL.toml`) has `[rve]`, "
        "`[physics]`, `[materials.<phase>]` and optionally `[solver]`. Every file is "
        "validated before any work starts: an unknown key, a wrong type or a value out of "
        "range stops with one line naming the key path, and exit code 2.",
        "",
        "Columns: *required* keys must be given. *default* is the value the code takes when "
        "the key is left out, as the code states it (a dataclass field or a constant); "
        "`unset`: no value unless given, the meaning says what the code does then (derive "
        "one, or leave a feature off); blank: no single default in the code (the meaning or "
        "the example's comment says what happens). *example* is the value in the annotated "
        "example.",
        "",
        "## Run files",
        "",
        _rst(intro),
        "",
    ]
    run = keys["run"]
    order = [t.name for t in run_tables if t.name in run or t.name in FREE_FORM]
    order = [n for n in order if not n.startswith("materials.")]
    order.insert(order.index("physics") + 1 if "physics" in order else len(order), "materials")
    order += sorted(k for k in run if k not in order and k and not k.startswith("materials"))
    out += _section("###", "", run, run_by_name, extra)
    for name in order:
        if name == "materials":
            out += _materials_section(run_by_name, extra)
        elif name in FREE_FORM:
            table = run_by_name[name]
            out += [f"### `[{name}]`", "", FREE_FORM[name], ""]
            out += ["```toml", *table.lines, "```", ""]
        else:
            out += _section("###", name, run, run_by_name, extra)
    cell = keys["cell"]
    out += [
        "## Cell files",
        "",
        "A cell file is the `[rve]`, `[physics]` and `[materials.<phase>]` tables of a run "
        "file (same keys as above), and optionally `[petsc]` (`hmm_micro_` options, as in run "
        "files) and `[micro]` (the boundary condition). `hmm-fenics homogenize`, `rve` and "
        "`rve-size` also take a run file and use its cell. The annotated example:",
        "",
        "```toml",
        _cell_example().rstrip(),
        "```",
        "",
    ]
    out += _section("###", "", cell, cell_by_name, extra)
    same = [w for w in cell if w and w in run and cell[w] == run[w]]
    listed = ", ".join(f"`[{w}]`" for w in same)
    out += [f"Tables with the same keys as in run files (above): {listed}.", ""]
    tables = run_by_name | cell_by_name  # a cell file's own comments first
    for where in (w for w in cell if w and w not in same):  # a key set of cell files' own
        out += _section("###", where, cell, tables, extra)
    out += ["### `[solver]`", "", FREE_FORM["cell.solver"], ""]
    return "\n".join(out).rstrip() + "\n"


def _materials_section(tables: dict[str, Table], extra: dict[str, dict[str, str]]) -> list[str]:
    out = [
        "### `[materials.<phase>]`",
        "",
        "One table per phase (`matrix`, `inclusion`; image cells name their phases in "
        "`[rve.labels]`). The keys depend on the physics and the law:",
        "",
    ]
    keys = (set(), phase_keys())
    out += _key_table("materials.<phase>", keys, None, extra["materials.<phase>"])
    lines = [
        line for name, t in tables.items() if name.startswith("materials.") for line in t.lines
    ]
    return [*out, "", "```toml", *lines, "```", ""]


def _phase_meanings() -> dict[str, str]:
    """What each phase key is, from the ranges ``materials.py`` checks them against."""
    from hmm_fenics.materials import LAWS, NON_NEGATIVE, RANGES

    meanings = {key: f"{text} (exclusive range)" for key, (_, _, text) in RANGES.items()}
    meanings |= dict(NON_NEGATIVE)
    meanings["law"] = (
        f"elasticity only: one of {', '.join(LAWS)} (default elastic, or a power law when "
        "eps0 and n are given)"
    )
    meanings["prony"] = (
        'law = "maxwell": the Prony series [[E_1, tau_1], ...] (branch modulus, relaxation time)'
    )
    meanings["void"] = "`void = true` alone: the phase is a pore (removed from the mesh)"
    meanings["p"] = meanings.get("p", "") + "; diffusion power law, with g0"
    meanings["eps0"] = meanings.get("eps0", "") + "; elastic power law, with n"
    return meanings


def write(path: str | Path) -> Path:
    """Write the reference page to ``path`` (its folder is created) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(reference_markdown())
    return target


if __name__ == "__main__":
    import sys

    print(write(sys.argv[1] if len(sys.argv) > 1 else "docs/_generated/reference.md"))
