"""Coupling of scales: lifting macro gradients to cells, averaging back, homogenization."""
