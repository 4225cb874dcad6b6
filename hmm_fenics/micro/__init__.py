"""Micro solvers: cell problems compiled once per RVE, factorizations reused across queries."""
