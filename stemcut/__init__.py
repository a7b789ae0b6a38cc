"""stemcut: split songs into vocals, drums, bass, guitar and other stems.

    from stemcut import Separator
    separator = Separator()                        # the shipped models in weights/
    stems = separator.separate(audio, 44100)       # {stem: (channels, frames)}

The heavy parts (torch) load on first use, so ``stemcut --help`` stays fast.
"""

__version__ = "0.1.0"

__all__ = ["Separator", "OutputSpec", "AudioError", "ModelError", "TARGETS", "__version__"]


def __getattr__(name: str):
    if name == "Separator":
        from .separator import Separator
        return Separator
    if name in ("OutputSpec", "AudioError"):
        from . import audio
        return getattr(audio, name)
    if name == "ModelError":
        from .weights import ModelError
        return ModelError
    if name == "TARGETS":
        from .targets import TARGETS
        return TARGETS
    raise AttributeError(f"module 'stemcut' has no attribute {name!r}")
