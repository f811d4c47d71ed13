"""Classical reference solutions: the truth a network is measured against when a problem
has no ``exact``, and the classical baseline printed after a solve (docs/reference.md).

- :mod:`.options` — the ``reference`` section's schema (torch-free);
- :mod:`.result` — a reference solution, its interpolation and its npz file;
- :mod:`.data` — the problem's data sampled for the classical solvers;
- :mod:`.solve` — the choice of method, the refinement and its error estimate;
- :mod:`.cache` — the on-disk cache;
- :mod:`.baseline` — the classical baseline after a solve;
- :mod:`.truth` — what a run's errors are measured against;
- :mod:`.fd` — finite differences on boxes (and the axis building blocks);
- :mod:`.flux` — the flux-form finite-volume solver for variable coefficients;
- :mod:`.collocation` — Chebyshev/Fourier collocation on boxes;
- :mod:`.nodes` — Chebyshev nodes and differentiation (shared by fd and collocation);
- :mod:`.fem` — finite elements (scikit-fem) on domains that are not boxes.

Import from the module that defines a name; this package file imports nothing, so that
loading the torch-free :mod:`.options` pulls in no solver.
"""
