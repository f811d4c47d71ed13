"""What the trainer talks to: the objective it minimises (:class:`ObjectiveLike`, the
residual blocks of :mod:`mscalepde.equations`) and the callbacks it calls at the start,
after every step, at log rows, checkpoints, restores and the end (:class:`Callback`: the
spectral monitor, the run writer, the progress bar and ``model.adapt`` are callbacks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from torch import Tensor

if TYPE_CHECKING:
    from mscalepde.training.trainer import Trainer


class ObjectiveLike(Protocol):
    seed: int  # the seed of the current points

    def terms(self, model: Callable[[Tensor], Tensor]) -> dict[str, Tensor]: ...

    def resample(self, seed: int) -> None: ...

    def drawn(self, seed: int) -> ObjectiveLike: ...


class Callback:
    """Hooks called by :class:`Trainer` (all optional)."""

    def on_start(self, trainer: Trainer) -> None: ...

    def on_step(self, trainer: Trainer, step: int) -> None: ...

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None: ...

    def on_checkpoint(self, trainer: Trainer, step: int) -> None: ...

    def on_restore(self, trainer: Trainer) -> None:
        """The trainer went back to an earlier step (``on_nan: rollback``)."""

    def on_end(self, trainer: Trainer) -> None: ...
