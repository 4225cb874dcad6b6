"""A NumPy history model for the stepping tests: an elastoplastic spring per gradient component.

Each Mandel component j of a point's gradient drives a 1D spring: stress E (G_j − p_j),
yield |σ_j − H p_j| ≤ σ_y (linear kinematic hardening), return mapping exact for a straight
increment. Committed and trial states are separate arrays; ``respond`` always starts from
the committed one. No micro cells: fast, and its answers are known in closed form.
"""

import numpy as np

from hmm_fenics.errors import MicroFailure, point_label
from hmm_fenics.micro.cell_problem import MicroResponse


def spring(G, p, d, E, H, sigma_y):
    """One straight increment to G from (p, d): (σ, tangent, p, d); arrays of one shape."""
    xi = E * (G - p) - H * p
    f = np.abs(xi) - sigma_y
    dp = np.where(f > 0, f / (E + H), 0.0) * np.sign(xi)
    p = p + dp
    return E * (G - p), np.where(f > 0, E * H / (E + H), E), p, d + sigma_y * np.abs(dp)


class SpringModel:
    """The fake history model (see the module docstring).

    Args:
        n: Components per point.
        fail: ``fail(model, time, attempt) -> bool``: raise a micro failure for the first
            point in this respond (after writing trial rows, as a real failure would).
        cost: Per-point cost from coordinates (for the balanced schedule).
    """

    def __init__(self, n, E=1.0, H=0.1, sigma_y=0.004, fail=None, cost=None):
        self.n, self.E, self.H, self.sigma_y = n, E, H, sigma_y
        self.fail, self.cost = fail, cost
        self.committed = np.zeros((0, 2 * n))
        self.trial = self.committed.copy()
        self.time, self.dt, self.attempts = 0.0, 0.0, {}
        self.log = []
        self.iterations = None
        self.last_costs = None
        self._averages = {}

    def state_width(self):
        return 2 * self.n

    def begin_step(self, time, dt):
        self.time, self.dt = time, dt
        self.attempts[time] = self.attempts.get(time, 0) + 1
        self.log.append(("begin", time))

    def commit(self):
        self.committed = self.trial.copy()
        self.log.append(("commit", self.time))

    def rollback(self):
        self.trial = self.committed.copy()
        self.log.append(("rollback", self.time))

    def state_rows(self):
        return self.committed.copy()

    def set_state_rows(self, rows):
        self.committed = np.array(rows, dtype=np.float64).reshape(len(rows), 2 * self.n)
        self.trial = self.committed.copy()

    def averages(self):
        return self._averages

    def respond(self, gradients, points, ids=None):
        m, n = gradients.shape
        if len(self.committed) != m:
            self.committed = np.zeros((m, 2 * n))
        p, d = self.committed[:, :n], self.committed[:, n:]
        sigma, slope, p_new, d_new = spring(gradients, p, d, self.E, self.H, self.sigma_y)
        self.trial = np.hstack([p_new, d_new])
        if (
            self.fail is not None
            and m
            and self.fail(self, self.time, self.attempts.get(self.time, 0))
        ):
            error = MicroFailure(f"fake micro Newton failed at {point_label(0, points, ids)}")
            error.point = 0
            raise error
        tangent = np.zeros((m, n, n))
        tangent[:, np.arange(n), np.arange(n)] = slope
        stored = 0.5 * self.E * (gradients - p_new) ** 2 + 0.5 * self.H * p_new**2
        self._averages = {
            "stored_energy": stored.sum(axis=1),
            "dissipation": d_new.sum(axis=1),
            "plastic_strain": np.abs(p_new).sum(axis=1),
        }
        self.iterations = np.where(np.abs(p_new - p).sum(axis=1) > 0, 2, 1)
        self.last_costs = (
            np.ones(m) if self.cost is None else np.array([self.cost(x) for x in points])
        )
        return MicroResponse(sigma, tangent)
