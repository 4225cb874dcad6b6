#!/usr/bin/env bash
# Creates the separate SfePy venv used only by bench/bench_vs_sfepy.py (never by the package).
# SFEPY_VENV overrides the location (default: .venv-sfepy next to .venv). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SFEPY_VENV:-.venv-sfepy}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import sfepy, mumpspy" 2>/dev/null; then
  exit 0
fi
py=""
for c in "${PYTHON:-}" python3.13 python3.12 python3 \
         $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -r); do
  [ -n "$c" ] || continue
  if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then py=$c; break; fi
done
[ -n "$py" ] || { echo "error: no Python >= 3.12 found for the SfePy venv" >&2; exit 1; }
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q sfepy gmsh meshio
# SfePy's ls.auto_direct prefers MUMPS (through mumpspy, which needs Debian's sequential MUMPS),
# then UMFPACK, then SciPy's SuperLU: give it MUMPS, its fastest, so the comparison is fair.
# Debian's MUMPS links the system BLAS: OpenBLAS rather than the reference one.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -q libmumps-seq-dev libopenblas0-serial >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q libmumps-seq-dev libopenblas0-serial >/dev/null; }
fi
"$venv/bin/python" -m pip install -q mumpspy || echo "mumpspy not installable: SfePy falls back to SuperLU" >&2
