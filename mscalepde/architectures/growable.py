"""Networks that can grow: one embedding or subnetwork per frequency band.

``model.adapt`` (:mod:`mscalepde.frequencies.adapt`) adds a band during training when the
error estimate shows energy at a frequency the network does not represent (Huang, You,
Zhou, *Frequency-adaptive multi-scale deep neural networks*, CMAME 2025; docs/design.md §9).
An architecture can grow exactly when it subclasses :class:`Growable`; the two methods
it must provide are abstract, so a class that forgets one cannot be instantiated. The
registry's ``growable`` flag (``mscalepde/architectures/__init__.py``) is checked against
this class by the tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import nn

from mscalepde.architectures.base import Architecture


class Growable(Architecture, ABC):
    """An architecture made of one embedding (σ) or subnetwork (scale) per band."""

    @abstractmethod
    def band_values(self) -> list[Any]:
        """The σ (or scales) of the embeddings or subnetworks :meth:`grow` extends."""

    @abstractmethod
    def _add_band(self, value: Any, seed: int) -> None:
        """Add one embedding or subnetwork for ``value`` whose output weights are zero."""

    @property
    def growth(self) -> list[tuple[Any, int]]:
        """(value, seed) of every :meth:`grow` call, in order (a checkpoint replays them)."""
        return self.__dict__.setdefault("_growth", [])

    @property
    def growth_params(self) -> list[list[str]]:
        """The names of the parameters each :meth:`grow` call added."""
        return self.__dict__.setdefault("_growth_params", [])

    def grow(self, value: Any, seed: int) -> list[str]:
        """Add an embedding (σ = ``value``) or subnetwork (scale ``value``) whose output
        weights are zero, so the network's function is unchanged (up to the summation
        order of the output layer); ``seed`` draws its random parts without touching
        torch's global generator. Existing parameters stay the same objects; returns the
        names of the new ones. A checkpoint replays :attr:`growth` before loading
        parameters, and Adam keeps each call's parameters in a parameter group of their
        own (:attr:`growth_params`)."""
        before = {n for n, _ in self.named_parameters()}
        self._add_band(value, int(seed))
        added = [n for n, _ in self.named_parameters() if n not in before]
        self.growth.append((value, int(seed)))
        self.growth_params.append(added)
        return added


def growth_of(model: nn.Module) -> list[tuple[Any, int]]:
    """What ``model`` grew so far: its :attr:`Growable.growth`, empty for other networks."""
    return model.growth if isinstance(model, Growable) else []
