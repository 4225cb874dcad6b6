"""The demos as documentation pages: literate scripts (jupytext "light") to MyST Markdown.

A demo ``demos/<name>.py`` is Python whose comment blocks are the text: a block of ``#``
lines separated from code by blank lines is Markdown (``# # Title`` is a heading), code between
``# +`` and ``# -`` (or any paragraph that is not all comments) is a code cell. Each page shows
the text, the code and the demo's run file ``demos/<name>.toml``; nothing is run at build time.
"""

from __future__ import annotations

from pathlib import Path

HELPERS = ("demo_support", "report")
"""Modules in demos/ that are no demo: the shared harness (arguments, checks, results)."""


def _markdown(block: list[str]) -> str:
    """A comment block without its ``#`` (``#`` alone is an empty line)."""
    return "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in block)


def _is_comment(line: str) -> bool:
    return line.startswith("#") and line.strip() not in ("# +", "# -")


def cells(source: str) -> list[tuple[str, str]]:
    """The (kind, text) cells of a light-format script, kind ``"markdown"`` or ``"code"``."""
    out: list[tuple[str, str]] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "# +":  # an explicit code cell, to "# -"
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "# -"), None)
            end = len(lines) if end is None else end
            out.append(("code", "\n".join(lines[i + 1 : end]).strip("\n")))
            i = end + 1
            continue
        if not line.strip():
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].strip() and lines[j].strip() != "# +":
            j += 1
        paragraph = lines[i:j]
        if all(_is_comment(p) for p in paragraph):
            out.append(("markdown", _markdown(paragraph)))
        else:
            out.append(("code", "\n".join(paragraph)))
        i = j
    merged: list[tuple[str, str]] = []  # neighbouring Markdown paragraphs read as one text
    for kind, text in out:
        if not text.strip():
            continue
        if merged and kind == "markdown" and merged[-1][0] == "markdown":
            merged[-1] = ("markdown", f"{merged[-1][1]}\n\n{text}")
        else:
            merged.append((kind, text))
    return merged


def page(script: Path) -> str:
    """The MyST page of one demo script (and of its run file, if it has one)."""
    parts = []
    title_seen = False
    for kind, text in cells(script.read_text()):
        if kind == "markdown":
            if not title_seen and not text.startswith("# "):
                parts.append(f"# {script.stem}\n")
            title_seen = True
            parts.append(text + "\n")
        else:
            if not title_seen:
                parts.append(f"# {script.stem}\n")
                title_seen = True
            parts.append(f"```python\n{text}\n```\n")
    run_file = script.with_suffix(".toml")
    source = f"`demos/{script.name}`"
    if run_file.exists():
        parts.append(
            f"## The run file\n\n`demos/{run_file.name}`, runnable on its own with "
            f"`hmm-fenics run demos/{run_file.name}`:\n\n"
            f"```toml\n{run_file.read_text().rstrip()}\n```\n"
        )
        source += f" and `demos/{run_file.name}`"
    parts.append(f"```{{note}}\nThis page is rendered from {source} at every docs build.\n```\n")
    return "\n".join(parts)


def demo_scripts(demos: Path) -> list[Path]:
    """The demo scripts in ``demos`` (helpers left out), sorted by name."""
    return sorted(p for p in demos.glob("*.py") if p.stem not in HELPERS)


def write(demos: Path, target: Path) -> list[Path]:
    """Write one page per demo and an index into ``target``; return the pages."""
    target.mkdir(parents=True, exist_ok=True)
    pages = []
    for script in demo_scripts(demos):
        out = target / f"{script.stem}.md"
        out.write_text(page(script))
        pages.append(out)
    index = [
        "# Demos",
        "",
        "Each demo is a run file `demos/<name>.toml` (runnable as it is with `hmm-fenics run`) "
        "and a literate script that runs it with `--size small|medium`, compares its numbers "
        "with references computed independently and writes them, with pass/fail, to "
        "`results.json` (exit code 1 if a check fails). Run any of them as "
        "`mpirun -n 2 python demos/<name>.py --size small`; `make demos` runs them all.",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        "",
        *(p.stem for p in pages),
        "```",
        "",
    ]
    (target / "index.md").write_text("\n".join(index))
    return pages
