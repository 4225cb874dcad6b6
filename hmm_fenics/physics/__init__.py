"""Physics: UFL kinematics and flux laws, with no knowledge of macro versus micro scale."""

from hmm_fenics.physics.diffusion import Diffusion
from hmm_fenics.physics.elasticity import Elasticity

Physics = Diffusion | Elasticity

__all__ = ["Diffusion", "Elasticity", "Physics"]
