"""What a study hands back to the command line: its numbers, a summary and its pictures."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple


class StudyOutput(NamedTuple):
    """The result of one ``hmm-fenics study NAME`` run, written by the command line.

    Attributes:
        name: The study's name: the output files are ``DIR/<name>.json`` and its pictures.
        data: Every number of the study, JSON-ready (lists, floats, strings).
        summary: A few lines for the terminal.
        draw: Writes the study's pictures into a folder and returns their paths (called on
            one rank only).
    """

    name: str
    data: dict[str, Any]
    summary: str
    draw: Callable[[Path], list[Path]]


def save_figure(figure: Any, path: Path) -> Path:
    """Lay out ``figure`` (matplotlib), write it to ``path`` (PNG, 110 dpi), close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
