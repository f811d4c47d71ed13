"""Inverse problems: unknown coefficients trained jointly with u from observations.

Modules (import names from the module that defines them):

- ``unknowns``: :class:`~mscalepde.inverse.unknowns.Unknowns`, the trainable scalars and
  fields, and their per-point values recorded for the Gauss–Newton Jacobian;
- ``model``: :class:`~mscalepde.inverse.model.InverseModel`, u's network and the unknowns
  as one module (what the trainer moves);
- ``objective``: :class:`~mscalepde.inverse.objective.InverseObjective`, the residual
  blocks whose data depend on the unknowns, and the observations' block;
- ``covariance``: the linearised (Laplace) covariance of the unknowns.
"""
