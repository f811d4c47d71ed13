"""A run's fields written for other tools (ParaView, VisIt, NumPy, spreadsheets).

- :mod:`.sites` — where the fields are evaluated: a structured grid of a box, a triangle or
  tetrahedral mesh of a shape, or the user's own points; and the times of a heat run;
- :mod:`.writers` — :func:`~.writers.export`: u_θ, the truth, the error and the PDE
  residual at those sites, as VTU (a PVD collection in time), XDMF + HDF5 (a temporal
  collection), NPZ or CSV, through meshio (Schlömer et al., https://github.com/nschloe/meshio).
"""
