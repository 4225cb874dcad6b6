"""Studies of the errors of HMM, each a ``hmm-fenics study NAME`` command writing JSON and PNG.

``STUDIES`` maps a study's name to its module. A study module has a one-line docstring
summary (the command's help), ``add_arguments(parser)`` for its own options, and
``run(args, comm) -> StudyOutput``. Its imports of DOLFINx and of the solvers are made
inside its functions so that building the command line stays fast.

- ``oned``: the 1D hands-on case (the harmonic mean emerges from the HMM loop);
- ``resonance``: the apparent coefficient's error against δ/ε for every micro BC;
- ``budget``: the error budget of a locally periodic medium (macro H, modeling δ/H,
  resonance ε/δ).
"""

from types import ModuleType

from hmm_fenics.studies import budget, oned, resonance
from hmm_fenics.studies.output import StudyOutput

STUDIES: dict[str, ModuleType] = {"oned": oned, "resonance": resonance, "budget": budget}
"""Study name → its module (see the package docstring for what a module provides)."""

__all__ = ["STUDIES", "StudyOutput"]
