"""Derivatives of networks: the forward-Laplacian jets, the derivative engine, the PDE
operators and the activations whose Taylor coefficients the jets need.

- :mod:`.jet` — Taylor jets (value, gradient, Laplacian streams) through a network;
- :mod:`.derivatives` — the derivative engine: which streams a residual needs;
- :mod:`.operators` — the differential operator of a problem (diffusion, reaction);
- :mod:`.activations` — activation functions with their derivatives up to order 2.
"""
