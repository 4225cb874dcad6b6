"""What the rows of a checkpoint belong to: partition-independent keys and mesh identity.

:func:`dof_keys` keys the macro dofs by the input numbering of the mesh nodes (any number of
ranks reads them back); :func:`identity` sums up the macro mesh and the micro cell that the
saved states belong to, and :func:`check_identity` refuses a checkpoint of other meshes
(``hmm_fenics.run.restart`` compares them before it restores anything, and the point
coordinates after, to :data:`POINT_TOLERANCE`).
"""

import hashlib
from typing import Any

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.run.checkpoint import Checkpoint, CheckpointError

POINT_TOLERANCE = 1e-6
"""Macro points of the checkpoint and the run must agree to this × the smallest cell size."""


def dof_keys(V: Any) -> npt.NDArray[np.int64]:
    """Partition-independent keys of the owned dofs of a Lagrange space (P1, P2), ``(n_owned × bs,)``.

    A dof on a vertex is keyed by the input index of its mesh node (N nodes in the input
    mesh), one on an edge by N + a N + b of its end nodes a < b; then × block size +
    component. Higher degrees (face or cell dofs) raise ``InputError``.
    """
    import basix

    mesh = V.mesh
    comm = mesh.comm
    layout = V.dofmap.dof_layout
    tdim = mesh.topology.dim
    nodes = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
    n_input = comm.allreduce(int(nodes.max()) + 1 if len(nodes) else 0, op=MPI.MAX)
    geometry = mesh.geometry.dofmaps[0]  # its first columns are the cell's vertices, in order
    cell_dofs = V.dofmap.list
    topology = basix.topology(getattr(basix.CellType, mesh.topology.cell_name()))
    keys = np.full(cell_dofs.max() + 1 if cell_dofs.size else 0, -1, dtype=np.int64)
    for dim in range(tdim + 1):
        for entity, vertices in enumerate(topology[dim]):
            local = layout.entity_dofs(dim, entity)
            if not local:
                continue
            if dim > 1 or len(local) > 1:
                raise InputError(
                    "checkpoints key the macro dofs by mesh nodes and edges: macro.degree "
                    "must be 1 or 2."
                )
            ends = np.sort(nodes[geometry[:, vertices]], axis=1)
            key = ends[:, 0] if dim == 0 else n_input + ends[:, 0] * n_input + ends[:, 1]
            keys[cell_dofs[:, local[0]]] = key
    bs = V.dofmap.index_map_bs
    owned = keys[: V.dofmap.index_map.size_local]
    result: npt.NDArray[np.int64] = (owned[:, None] * bs + np.arange(bs)).ravel()
    return result


def identity(problem: MacroProblem, template: Any) -> dict[str, Any]:
    """What the states of a checkpoint belong to: the macro mesh and the micro cell (collective).

    ``macro``: global counts of nodes, cells and quadrature points, and ``nodes_hash``, a
    sum over the nodes (mod 2⁶⁴) of a hash of each node's input index and coordinates
    (quantized to 2⁻²⁴ of the mesh extent), the same on any partition. ``cell`` (None
    without one template cell): the template's unknowns and a hash of its dof coordinates
    in their order (the fluctuations derived from the state rows are in that order).
    """
    msh = problem.mesh.mesh
    comm = msh.comm
    geometry = msh.geometry
    owned = geometry.index_map().size_local
    x = np.asarray(geometry.x[:owned, : geometry.dim], dtype=np.float64)
    lower = np.array([comm.allreduce(float(v), op=MPI.MIN) for v in _ends(x, np.min)])
    upper = np.array([comm.allreduce(float(v), op=MPI.MAX) for v in _ends(x, np.max)])
    nodes = np.asarray(geometry.input_global_indices[:owned], dtype=np.int64)
    local = int(_node_hashes(nodes, x, lower, upper).sum(dtype=np.uint64))
    tdim = msh.topology.dim
    macro = {
        "nodes": int(geometry.index_map().size_global),
        "cells": int(msh.topology.index_map(tdim).size_global),
        "points": comm.allreduce(problem.quadrature.n_points, op=MPI.SUM),
        "nodes_hash": f"{sum(comm.allgather(local)) % 2**64:016x}",
    }
    cell = None
    V = getattr(template, "V", None)
    if V is not None:
        y = np.asarray(V.tabulate_dof_coordinates(), dtype=np.float64)
        span = float((y.max(axis=0) - y.min(axis=0)).max()) if len(y) else 1.0
        quantized = np.rint((y - y.min(axis=0)) / (span * 2.0**-24)).astype("<i8")
        cell = {
            "unknowns": int(template.n_unknowns),
            "dofs_hash": hashlib.sha256(quantized.tobytes()).hexdigest()[:16],
        }
    return {"macro": macro, "cell": cell}


def _ends(x: npt.NDArray[np.float64], reduce: Any) -> npt.NDArray[np.float64]:
    """Per-coordinate min or max of this rank's nodes (±inf without nodes)."""
    if len(x):
        return np.asarray(reduce(x, axis=0))
    return np.full(x.shape[1], np.inf if reduce is np.min else -np.inf)


def _node_hashes(
    nodes: npt.NDArray[np.int64],
    x: npt.NDArray[np.float64],
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
) -> npt.NDArray[np.uint64]:
    """A 64-bit hash per node of its input index and quantized coordinates (splitmix64)."""
    quantum = float((upper - lower).max() or 1.0) * 2.0**-24
    quantized = np.rint((x - lower) / quantum).astype(np.int64).view(np.uint64)
    h = _mix(nodes.view(np.uint64))
    for j in range(x.shape[1]):
        h = _mix(h ^ quantized[:, j])
    return h


def _mix(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The splitmix64 finalizer (a bijection of 64-bit words with good avalanche)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))  # type: ignore[no-any-return]


def check_identity(checkpoint: Checkpoint, current: dict[str, Any]) -> None:
    """Refuse a checkpoint written for another macro mesh or micro cell, naming what differs.

    Raises:
        CheckpointError: the counts or hashes differ (``--force`` does not override this).
    """
    saved = checkpoint.manifest.get("identity", {})
    names = {
        ("macro", "nodes"): "macro mesh nodes",
        ("macro", "cells"): "macro mesh cells",
        ("macro", "points"): "macro quadrature points",
        ("macro", "nodes_hash"): "macro mesh node coordinates (hash by input index)",
        ("cell", "unknowns"): "micro cell unknowns",
        ("cell", "dofs_hash"): "micro cell dof coordinates (hash)",
    }
    differ = []
    for (part, key), name in names.items():
        old, new = (saved.get(part) or {}).get(key), (current.get(part) or {}).get(key)
        if old != new:
            differ.append(f"{name}: {old} in the checkpoint, {new} in this run")
    if differ:
        raise mesh_error(checkpoint, "; ".join(differ))


def mesh_error(checkpoint: Checkpoint, what: str) -> CheckpointError:
    """The refusal of a checkpoint of another mesh (names what differs)."""
    return CheckpointError(
        f"checkpoint {checkpoint.folder} was written for another mesh: {what}. Its states "
        "belong to other points, so resuming would give meaningless results; --force does "
        "not override this. Resume with the meshes it was written with, or start again "
        "with --overwrite."
    )
