"""The five stems stemcut separates, in their canonical order."""

TARGETS = ("vocals", "drums", "bass", "guitar", "other")

# The karaoke output: the mixture minus the vocals.
KARAOKE_STEM = "instrumental"
