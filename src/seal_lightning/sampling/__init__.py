"""Self-edit sampling behind one seam: the `Sampler` protocol and its backends."""

from seal_lightning.sampling.base import Completion, Sampler, build_sampler

__all__ = ["Completion", "Sampler", "build_sampler"]
