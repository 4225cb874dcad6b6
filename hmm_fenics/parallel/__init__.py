"""MPI distribution of micro work: mpi4py and NumPy only (no DOLFINx here)."""
