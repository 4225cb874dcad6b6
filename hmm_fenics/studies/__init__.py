"""Studies of the errors of HMM, each a ``hmm-fenics study NAME`` command writing JSON and PNG.

``STUDIES`` maps a study's name to its module. A study module has a one-line docstring
summary (the command's help), ``add_arguments(parser)`` for its own options (the command
line adds ``-o/--output DIR``, ``--overwrite``, ``--quiet`` and ``--verbose`` to every
study), and ``run(args, comm) -> StudyOutput``. Its imports of DOLFINx and of the solvers are
made inside ``run`` so that building the command line stays fast.

- ``statistical``: random media, the ensemble mean and 95% interval against δ per BC;
- ``resonance``: the apparent coefficient's error against δ/ε for every micro BC;
- ``budget``: the error budget of a locally periodic medium (macro H, modeling δ/H,
  resonance ε/δ and BC);
- ``oned``: the 1D hands-on case (the harmonic mean emerges from the HMM loop).

The RVE-size selector (``hmm_fenics.studies.rve_size``, the ``hmm-fenics rve-size``
command) lives here too: it is built from the same windows and ensembles.
"""

from types import ModuleType

from hmm_fenics.studies import budget, oned, resonance, statistical
from hmm_fenics.studies.output import StudyOutput

STUDIES: dict[str, ModuleType] = {
    "statistical": statistical,
    "resonance": resonance,
    "budget": budget,
    "oned": oned,
}
"""Study name → its module (see the package docstring for what a module provides)."""

__all__ = ["STUDIES", "StudyOutput"]
