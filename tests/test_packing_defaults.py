"""Random cells reach the fractions users ask for with the default gap (issue 15 point 7)."""

import math

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.errors import InputError
from hmm_fenics.rve.packing import GAP_STEPS, default_gap_packing, random_packing


def one_by_one(cell, count, fraction, gap, seed, attempts=20_000):
    """RSA of equal spheres/disks, one trial at a time: the reference for the batched trials."""
    L = np.asarray(cell)
    dim = len(cell)
    rng = np.random.default_rng(seed)
    rng.uniform(-1, 1, count)  # the radius draws (equal radii: spread 0)
    measure = math.pi if dim == 2 else 4 * math.pi / 3
    r = (fraction * np.prod(L) / (measure * count)) ** (1 / dim)
    centers = []
    while len(centers) < count and attempts:
        attempts -= 1
        c = rng.uniform(0, 1, dim) * L
        if np.any(np.abs(np.minimum(c, L - c) - r) < gap):
            continue
        d = c - np.array(centers).reshape(-1, dim)
        d -= L * np.round(d / L)
        if len(centers) and np.linalg.norm(d, axis=1).min() < 2 * r + gap:
            continue
        centers.append(c)
    return np.array(centers)


@pytest.mark.parametrize(
    ("dim", "count", "fraction", "gap"), [(2, 12, 0.4, 0.02), (3, 15, 0.2, 0.05)]
)
@pytest.mark.parametrize("seed", [0, 3])
def test_batched_trials_give_the_one_by_one_packing(dim, count, fraction, gap, seed):
    shape = "disk" if dim == 2 else "sphere"
    packing = random_packing((1.0,) * dim, count, fraction, shape, min_gap=gap, seed=seed)
    np.testing.assert_array_equal(
        packing.centers, one_by_one((1.0,) * dim, count, fraction, gap, seed)
    )


def minimum_clearance(packing, cell):
    L = np.asarray(cell)
    d = packing.centers[:, None, :] - packing.centers[None, :, :]
    d -= L * np.round(d / L)
    dist = np.linalg.norm(d, axis=2) - packing.radii[:, None] - packing.radii[None, :]
    return dist[~np.eye(len(packing.radii), dtype=bool)].min()


def test_default_gap_is_one_mesh_size_when_that_packs():
    cell = (1.0, 1.0)
    packing, gap = default_gap_packing(0.02, cell, 10, 0.3, "disk")
    assert gap == 0.02
    same = random_packing(cell, 10, 0.3, "disk", min_gap=0.02)  # the cells of before
    np.testing.assert_array_equal(packing.centers, same.centers)


def test_three_tenths_with_20_spheres_builds_with_the_defaults():
    """The issue's case: f = 0.3, 20 spheres, 3D, no min_gap (a coarse mesh for speed)."""
    spec = hf.RVESpec("random", 3, 0.3, 0.125, count=20)
    assert spec.min_gap is None  # the default
    with pytest.raises(InputError, match=r"rve\.min_gap"):  # one mesh size alone jams ...
        random_packing(spec.lengths, 20, 0.3, "sphere", min_gap=spec.mesh_size)
    packing, gap = default_gap_packing(spec.mesh_size, spec.lengths, 20, 0.3, "sphere")
    assert gap in [s * spec.mesh_size for s in GAP_STEPS] and gap < spec.mesh_size
    assert minimum_clearance(packing, spec.lengths) >= gap  # the clearance it reports holds
    rve = hf.build_rve(spec)
    # the mesher fits the meshed volume to the target within its tolerance (1e-3 relative
    # in rve.geometry; 1e-2 here leaves room for its warning path)
    assert rve.fraction == pytest.approx(0.3, rel=1e-2)
    assert rve.mesh.topology.index_map(3).size_local > 1000


def test_an_explicit_gap_is_kept_and_the_error_names_the_keys():
    with pytest.raises(InputError, match=r"rve\.min_gap"):
        hf.build_rve(hf.RVESpec("random", 3, 0.3, 0.125, count=20, min_gap=0.125))
    # beyond RSA's reach at the smallest default gap: the message says which keys to change
    with pytest.raises(InputError, match=r"set rve\.min_gap .* rve\.fraction or rve\.count"):
        default_gap_packing(0.0625, (1.0, 1.0, 1.0), 20, 0.45, "sphere")
