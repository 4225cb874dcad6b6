"""The documentation site (`make docs`), the generated reference, CHANGELOG.md and CITATION.cff.

The HTML build runs Sphinx with warnings as errors on a copy of docs/ in a temporary folder, so
`make test` fails on a broken docs build. It needs the `docs` extra (`make docs` and `make test`
install it); the generator and converter tests need only the package.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import generate_api  # noqa: E402
import generate_reference  # noqa: E402
import render_demos  # noqa: E402

import hmm_fenics  # noqa: E402
from hmm_fenics.run.schema import EXAMPLE  # noqa: E402

HAVE_SPHINX = all(importlib.util.find_spec(m) for m in ("sphinx", "myst_parser"))
NEEDS_SPHINX = pytest.mark.skipif(
    not HAVE_SPHINX, reason="the docs extra (sphinx, myst-parser) is not installed: make docs"
)


@pytest.fixture(scope="module")
def reference() -> str:
    return generate_reference.reference_markdown()


def _section(page: str, title: str) -> str:
    """The text of the reference page's ``### <title>`` section, up to the next heading."""
    start = page.index(f"### {title}\n")
    end = page.find("\n#", start + 1)
    return page[start : end if end > 0 else len(page)]


def test_recorder_reaches_every_table_of_the_parsers():
    keys = generate_reference.accepted_keys()
    # the tables whose keys parse_run_config checks; a probe that stopped reaching one would
    # silently drop its keys from the page
    expected = {"", "rve", "physics", "macro", "micro", "micro.graded", "solver", "output"}
    assert expected | {"loading"} <= set(keys["run"])
    assert {"", "rve", "physics"} <= set(keys["cell"])
    assert keys["run"]["micro.graded"][0] == {"parameter", "axis", "start", "end", "step"}
    assert {"E", "nu", "k", "sigma_y", "prony", "law", "void"} <= keys["run"]["materials.<phase>"][
        1
    ]


@pytest.mark.parametrize("kind", ["run", "cell"])
def test_reference_describes_every_key_the_parsers_accept(reference, kind):
    keys = generate_reference.accepted_keys()[kind]
    part = reference.split("## Cell files")[0 if kind == "run" else 1]
    missing, undescribed = [], []
    for where, (required, optional) in keys.items():
        title = f"`[{where}]`" if where else "Top level"
        # a cell file's [rve], [physics] and phases are the run file's: described once
        section = _section(part if f"### {title}\n" in part else reference, title)
        for key in required | optional:
            row = next(
                (line for line in section.splitlines() if line.startswith(f"| `{key}` |")), None
            )
            if row is None:
                missing.append(f"{where}.{key}")
            elif generate_reference.UNDESCRIBED in row:
                undescribed.append(f"{where}.{key}")
    assert not missing, f"accepted keys missing from the reference: {missing}"
    assert not undescribed, f"accepted keys that no schema text describes: {undescribed}"


def test_example_keys_are_accepted_keys():
    """Every key line of EXAMPLE in a key-checked table is a key the parser accepts."""
    keys = generate_reference.accepted_keys()["run"]
    _, tables = generate_reference.parse_example(EXAMPLE)
    stale = [
        f"{t.name}.{e.key}"
        for t in tables
        if t.name in keys
        for e in t.entries
        if e.key not in keys[t.name][0] | keys[t.name][1]
    ]
    assert not stale, f"EXAMPLE shows keys the parser refuses: {stale}"
    assert {t.name for t in tables} >= {"macro", "loading", "micro", "solver", "output"}


def test_example_parser_reads_comments_and_continuations():
    text = (
        "# intro line\n"
        "[a]                # the a table\n"
        'x = 1              # first # with a hash in "the" comment\n'
        '# y = "p#q"        # optional, not set by default\n'
        "#                  #   continued here\n"
        "                   # and here\n"
        "# [a.b]            # an optional sub-table\n"
        "# z = [1, 2]\n"
    )
    intro, tables = generate_reference.parse_example(text)
    assert intro == "intro line"
    assert [(t.name, t.comment, t.optional) for t in tables] == [
        ("a", "the a table", False),
        ("a.b", "an optional sub-table", True),
    ]
    x, y = tables[0].entries
    assert (x.key, x.value, x.commented) == ("x", "1", False)
    assert x.comment == 'first # with a hash in "the" comment'
    assert (y.key, y.value, y.commented) == ("y", '"p#q"', True)
    assert y.comment == "optional, not set by default continued here and here"
    assert [(e.key, e.value) for e in tables[1].entries] == [("z", "[1, 2]")]


def test_reference_takes_defaults_and_meanings_from_the_code(reference):
    from hmm_fenics.rve.spec import RVESpec

    rve = _section(reference, "`[rve]`")
    # RVESpec's field default and its docstring's Args entry, not a copy written for the docs
    refine = next(line for line in rve.splitlines() if line.startswith("| `refine` |"))
    assert f"`{RVESpec.refine!r}`" in refine
    assert "mesh_size / refine" in refine
    solver = _section(reference.split("## Cell files")[0], "`[solver]`")
    assert '| `schedule` |  | `"owner"` |' in solver


def test_demo_converter_splits_text_and_code():
    source = (
        "# # Title\n#\n# Some *text*.\n\n"
        "# +\nimport numpy as np\n\n# a code comment\nx = np.ones(2)\n# -\n\n"
        "# ## Part\n# more text\n\n"
        "y = x + 1\n"
    )
    assert render_demos.cells(source) == [
        ("markdown", "# Title\n\nSome *text*."),
        ("code", "import numpy as np\n\n# a code comment\nx = np.ones(2)"),
        ("markdown", "## Part\nmore text"),
        ("code", "y = x + 1"),
    ]


@pytest.mark.parametrize("script", render_demos.demo_scripts(ROOT / "demos"), ids=lambda p: p.stem)
def test_every_demo_line_is_on_its_page(script):
    page = render_demos.page(script)
    shown = "\n".join(re.findall(r"```python\n(.*?)\n```", page, flags=re.S)).splitlines()
    code = [line for line in script.read_text().splitlines() if line.strip() and line[0] != "#"]
    assert [line for line in code if line not in shown] == []
    text = re.sub(r"```.*?```", "", page, flags=re.S)  # headings outside code blocks
    assert page.startswith("# ") and re.findall(r"^# ", text, flags=re.M) == ["# "]
    if script.with_suffix(".toml").exists():
        assert script.with_suffix(".toml").read_text().strip() in page


@NEEDS_SPHINX
@pytest.mark.serial
def test_docs_build_with_warnings_as_errors(tmp_path):
    source = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", source, ignore=shutil.ignore_patterns("_generated", "_build"))
    env = os.environ | {
        "HMM_FENICS_ROOT": str(ROOT),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    build = subprocess.run(
        [*command, str(source), str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stdout + build.stderr
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    demos = {f"_generated/demos/{p.stem}.html" for p in render_demos.demo_scripts(ROOT / "demos")}
    expected = {"index.html", "getting_started.html", "theory.html"}
    expected |= {f"_generated/{p}.html" for p in ("reference", "api", "changelog")}
    assert expected | demos <= pages
    api = (out / "_generated/api.html").read_text()
    public = [name for name in hmm_fenics.__all__ if not name.startswith("_")]
    assert [name for name in public if f'id="hmm_fenics.{name}"' not in api] == []
    blocks = [path for paths in generate_api.BUILDING_BLOCKS.values() for path in paths]
    assert [path for path in blocks if f'id="{path}"' not in api] == []
    reference = (out / "_generated/reference.html").read_text()
    assert "materials.&lt;phase&gt;" in reference and "micro.graded" in reference


def test_citation_cff_is_valid_cff_1_2():
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the docs extra")
    data = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # CFF 1.2.0 (citation-file-format schema.json): required keys, types, and no others
    allowed = {
        "abstract", "authors", "cff-version", "commit", "contact", "date-released", "doi",
        "identifiers", "keywords", "license", "license-url", "message", "preferred-citation",
        "references", "repository", "repository-artifact", "repository-code", "title", "type",
        "url", "version",
    }  # fmt: skip
    assert {"cff-version", "message", "title", "authors"} <= set(data) <= allowed
    assert data["cff-version"] == "1.2.0"
    assert all(isinstance(data[k], str) and data[k].strip() for k in ("message", "title"))
    assert data.get("type", "software") in ("software", "dataset")
    assert data["authors"] and all(
        isinstance(a, dict) and ("family-names" in a or "name" in a) for a in data["authors"]
    )
    assert all(isinstance(k, str) for k in data.get("keywords", []))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert str(data["version"]) == project["version"]
    assert data["license"] == project["license"]


def test_changelog_has_a_section_per_tracker_issue():
    text = (ROOT / "CHANGELOG.md").read_text()
    numbers = [int(n) for n in re.findall(r"^### Issue (\d+) — ", text, flags=re.M)]
    # the tracker's issues up to this one (it has no 1, 7, 8, 9), newest first
    assert numbers == [15, 14, 13, 12, 11, 10, 6, 5, 4, 3, 2]
    hashes = set(re.findall(r"`([0-9a-f]{7})`", text))
    git = shutil.which("git")
    if git and (ROOT / ".git").exists():
        known = subprocess.run(
            [git, "-C", str(ROOT), "log", "--format=%h", "--abbrev=7"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if len(known) > 50:  # a full clone: every hash the changelog names is a commit
            missing = [h for h in hashes if not any(k.startswith(h) for k in known)]
            assert missing == []


def test_a_key_is_described_by_a_comment_that_lists_keys_not_by_prose(monkeypatch):
    monkeypatch.setattr(generate_reference, "ATTRIBUTES", {})  # comments only
    text = (
        "[t]\n"
        "L = 1.0    # lengths: L (x1), H (x2)\n"
        "period = 1 # the edge in macro units (epsilon)\n"
        "rtol = 0.1 # |R| <= max(atol, rtol |R0|)\n"
        "atol = 0.0\n"
    )
    _, (table,) = generate_reference.parse_example(text)

    def meaning(key):
        return generate_reference._meaning("t", key, table, {})

    assert meaning("H") == "see `L`: lengths: L (x1), H (x2)"
    assert meaning("atol") == "see `rtol`: |R| <= max(atol, rtol |R0|)"
    assert meaning("epsilon") == generate_reference.UNDESCRIBED
