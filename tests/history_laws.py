"""Point laws for the history-cell tests: hmm_fenics.point_laws' when present, else a local J2.

The local J2 (radial return, linear isotropic + Prager kinematic hardening, consistent
tangent; state εᵖ, α, p, dissipation = 14 columns) stands in until the laws branch is merged.
"""

import numpy as np

from hmm_fenics import point_laws

ONE = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
DEV = np.eye(6) - np.outer(ONE, ONE) / 3.0


class _J2:
    n_vars = 14

    def __init__(self, E, nu, sigma_y, H_iso=0.0, H_kin=0.0):
        self.K, self.mu = E / (3 * (1 - 2 * nu)), E / (2 * (1 + nu))
        self.sy, self.Hi, self.Hk = sigma_y, H_iso, H_kin
        self.C = self.K * np.outer(ONE, ONE) + 2 * self.mu * DEV

    def update(self, strain, state, dt):
        ep, alpha, p, D = state[:, :6], state[:, 6:12], state[:, 12], state[:, 13]
        mu = self.mu
        xi = 2 * mu * (strain - ep) @ DEV - alpha
        norm = np.linalg.norm(xi, axis=1)
        f = np.sqrt(1.5) * norm - (self.sy + self.Hi * p)
        plastic = f > 1e-12 * self.sy
        dp = np.where(plastic, f, 0.0) / (3 * mu + self.Hi + self.Hk)
        n = xi / np.where(norm > 0, norm, 1.0)[:, None]
        dep = np.sqrt(1.5) * dp[:, None] * n
        new = np.empty_like(state)
        new[:, :6] = ep + dep
        new[:, 6:12] = alpha + 2.0 / 3.0 * self.Hk * dep
        new[:, 12] = p + dp
        new[:, 13] = D + self.sy * dp
        stress = (strain - new[:, :6]) @ self.C
        theta = 1 - 3 * mu * dp / np.where(norm > 0, np.sqrt(1.5) * norm, 1.0)
        theta_bar = 3 * mu / (3 * mu + self.Hi + self.Hk) - (1 - theta)
        tangent = (
            self.K * np.outer(ONE, ONE)[None]
            + 2 * mu * theta[:, None, None] * DEV[None]
            - 2
            * mu
            * np.where(plastic, theta_bar, 0.0)[:, None, None]
            * np.einsum("mi,mj->mij", n, n)
        )
        return stress, tangent, new

    def free_energy(self, strain, state):
        e = strain - state[:, :6]
        return (
            0.5 * np.einsum("mi,ij,mj->m", e, self.C, e)
            + 0.5 * self.Hi * state[:, 12] ** 2
            + self.Hk / 3.0 * np.einsum("mi,mi->m", state[:, :6], state[:, :6])
        )

    def dissipation(self, state):
        return state[:, 13].copy()

    def plastic_strain(self, state):
        return state[:, 12].copy()


def j2(E, nu, sigma_y, H_iso=0.0, H_kin=0.0):
    """The J2 point law (hmm_fenics' once merged)."""
    law = getattr(point_laws, "J2Plasticity", _J2)
    return law(E, nu, sigma_y, H_iso, H_kin)


def maxwell(E, nu, prony):
    """hmm_fenics' Maxwell law, or None before the laws branch is merged."""
    law = getattr(point_laws, "Maxwell", None)
    return None if law is None else law(E, nu, tuple(tuple(t) for t in prony))


def path(law, strains, dt=1.0):
    """Single-point responses along a path of 3D strains ``(steps, 6)``: stresses, states."""
    state = np.zeros((1, law.n_vars))
    out = []
    for eps in strains:
        stress, tangent, state = law.update(np.asarray(eps, dtype=float)[None], state, dt)
        out.append((stress[0], tangent[0], state[0]))
    return out
