"""Training a network on a problem's loss.

- :mod:`.options` — the ``train`` section's schema, the one source of its defaults (torch-free);
- :mod:`.settings` — the resolved settings of one run and its optimiser phases;
- :mod:`.trainer` — the training loop: phases, logging, checkpoints, divergence guard;
- :mod:`.callbacks` — what the trainer calls: the objective protocol and the callbacks;
- :mod:`.state` — checks of a saved training state before a resume uses it;
- :mod:`.threads` — how many CPU threads, and OpenMP's wait policy on a busy machine;
- :mod:`.compile` — ``torch.compile`` of the loss, and when it pays;
- :mod:`.gauss_newton` — the Gauss–Newton / Levenberg–Marquardt phase;
- :mod:`.matrix_free`, :mod:`.krylov`, :mod:`.kfac` — its matrix-free step: J and Jᵀ
  products, PCG, the Nyström and Kronecker-factored preconditioners;
- :mod:`.history` — the loss history (``history.csv``);
- :mod:`.signals` — stopping on SIGINT/SIGTERM with a checkpoint;
- :mod:`.allocator` — glibc allocator settings for long runs.
"""
