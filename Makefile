# hmm_fenics — two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv (with a Python >= 3.12 found here) and install the package first if needed.

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
HOOK    := $(VENV)/.dolfinx-first
DOCS_STAMP := $(VENV)/.docs-installed
# Optional extras: drop "dolfinx" where DOLFINx is installed natively (official FEniCS images).
EXTRAS  ?= dolfinx,test
# The dolfinx-solver-real wheel ships MPICH and its mpirun; fall back to the system one.
MPIRUN  ?= $(shell test -x $(VENV)/bin/mpirun && echo $(VENV)/bin/mpirun || echo mpirun)
NP      ?= 2
PYTEST  := -m pytest -p no:cacheprovider -q
export OMP_NUM_THREADS ?= 1

.PHONY: install demo demos docs test test-serial test-mpi lint bench docker-test clean

install: $(STAMP) $(HOOK)

$(STAMP): pyproject.toml
	@py=""; \
	for c in "$$PYTHON" python3.13 python3.12 python3 \
	         $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -r); do \
	  [ -n "$$c" ] || continue; \
	  if "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then py="$$c"; break; fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "error: no Python >= 3.12 found (tried \$$PYTHON, python3.13, python3.12, python3, pyenv versions)." >&2; \
	  echo "       Install one, or run: make PYTHON=/path/to/python3.12 install" >&2; exit 1; \
	fi; \
	echo "Creating $(VENV) with $$py ($$("$$py" --version))"; \
	"$$py" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# setuptools' one informational note on editable installs is not shown (pip -q shows the
	@# backend's warnings, and this one is no problem to fix)
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# `python -c "import dolfinx"` works in the venv: a start-up hook imports the wheel's MPI
# (dolfinx_solver) just before the first import of dolfinx (see hmm_fenics/dolfinx_first.py).
$(HOOK): $(STAMP) hmm_fenics/dolfinx_first.py hmm_fenics/mpi_first.py
	$(PY) -m hmm_fenics.dolfinx_first
	@touch $(HOOK)

# The docs extra (Sphinx, MyST) on top of the install, for make docs and the docs test only:
# its requirements as pyproject lists them, without building the package again.
$(DOCS_STAMP): $(STAMP)
	$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["docs"], sep="\n")' \
	  | xargs -d '\n' $(PY) -m pip install -q
	@touch $(DOCS_STAMP)

# HTML documentation in out/docs/html (warnings are errors; tests/test_docs.py builds it too).
docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs out/docs/html
	@echo "Documentation: out/docs/html/index.html"

demo: install
	$(PY) demos/fe2_plate.py --output out/demo_fe2_plate --overwrite

# Every demo, small, under mpirun (each writes out/demo_<name>/results.json and checks its
# numbers), then one pass/fail table of all their checks; fails if a check failed, a demo
# exited with an error or wrote no results (its old results.json is removed first).
DEMOS := fiber_composite fe2_plate porous_rock porous_rock_ct graded plastic_composite three_scales fe2_vs_dns

demos: install
	@codes=""; for d in $(DEMOS); do \
	  echo "demo $$d"; rm -f out/demo_$$d/results.json; \
	  $(MPIRUN) -n $(NP) $(PY) demos/$$d.py --size small --quiet --overwrite; \
	  codes="$$codes $$d=$$?"; \
	done; \
	$(PY) demos/report.py --root out $$codes

# Builds docker/Dockerfile with docker, else podman (set up here if missing), runs the demo in it.
docker-test:
	bash docker/test.sh

test: test-serial test-mpi

test-serial: install $(DOCS_STAMP)
	$(PY) $(PYTEST) -m "not slow"

test-mpi: install
	$(MPIRUN) -n $(NP) $(PY) -m mpi4py $(PYTEST) -m "not slow and not serial"

SOURCES := $(wildcard hmm_fenics tests bench demos docs)

lint: install
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/bench_micro_query.py --json bench/results/micro_query.json
	bash bench/sfepy_env.sh
	$(PY) bench/bench_vs_sfepy.py --json bench/results/vs_sfepy.json
	$(PY) bench/bench_vs_sfepy.py --whole-process --cases AB --repeat 7 --json bench/results/vs_sfepy_whole.json
	$(PY) bench/bench_rve.py --json bench/results/rve.json
	$(PY) bench/bench_fe2.py --json bench/results/fe2.json
	$(PY) bench/bench_scaling.py --json bench/results/scaling.json
	$(PY) bench/bench_checkpoint.py --json bench/results/checkpoint.json

clean:
	rm -rf $(VENV) out docs/_generated .pytest_cache .mypy_cache .ruff_cache
