"""Training data for stemcut: stem readers, a synthetic multitrack generator, remixing.

Everything here is training-only; the separation engine does not import it.
Audio is always float32, 44.1 kHz, stereo, shaped ``[5, 2, T]`` in the target
order of :data:`TARGETS`.
"""

from stemcut.training.targets import SAMPLE_RATE, TARGETS

__all__ = ["SAMPLE_RATE", "TARGETS"]
