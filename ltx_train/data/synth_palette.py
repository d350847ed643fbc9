"""Looks of the synthetic world (``SynthConfig.palette``): wall colours, pattern contrast and light tint.

A palette changes only how the scene is drawn, never what happens in it: the same seed gives the same
objects, motion, contacts and sound under every palette (the wall tone is drawn as an index into five
slots, whatever the palette), so style adapters can be trained and compared on matching scenes.

Walls stay low in saturation (chromaticity distance from grey at most ~1/4 of the least saturated
object colour's), so objects remain trackable by colour under every look; the tracker tests in
``tests/test_synth.py`` check it on rendered clips.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_TONE_SLOTS = 5  # the scene sampler draws one of this many wall-tone slots for every palette


@dataclass(frozen=True)
class Palette:
    name: str
    wall_tones: tuple[tuple[str, tuple[float, float, float]], ...]  # (name, RGB in [0, 1]); slot i % len
    contrast: float = 1.0        # scale of the wall pattern's contrast
    outside_dim: float = 0.45    # brightness of the world outside the box (darker so the walls show)
    object_tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # colour of the light on the objects
    description: str = ""        # caption sentence; empty for the default look

    def tone(self, slot: int) -> tuple[str, tuple[float, float, float]]:
        return self.wall_tones[slot % len(self.wall_tones)]

    @property
    def reference_colour(self) -> np.ndarray:
        """(3,) expected background RGB in [0, 1]: the mean wall tone (the pattern's shading averages ~1)."""
        return np.mean([rgb for _, rgb in self.wall_tones], axis=0)


PALETTES: dict[str, Palette] = {p.name: p for p in (
    # the original world: pale neutral walls, white light (byte-identical to clips made before palettes)
    Palette("default", (("beige", (0.77, 0.74, 0.69)), ("grey", (0.7, 0.7, 0.7)), ("slate", (0.64, 0.66, 0.7)),
                        ("sand", (0.78, 0.75, 0.69)), ("sage", (0.68, 0.71, 0.67)))),
    # old photograph: warm brown walls, flat contrast, yellowed light
    Palette("sepia", (("sepia", (0.62, 0.5, 0.38)), ("umber", (0.55, 0.45, 0.35)), ("tan", (0.67, 0.55, 0.42))),
            contrast=0.7, outside_dim=0.55, object_tint=(1.0, 0.93, 0.8),
            description="The walls have the warm brown tones of an old sepia photograph, under yellowish light."),
    # dark room, glowing lines: near-black violet walls with a strong pattern, vivid objects
    Palette("neon", (("ink-black", (0.12, 0.11, 0.16)), ("dark violet", (0.14, 0.12, 0.19))),
            contrast=3.0, outside_dim=0.3,
            description="The room is dark, and the vivid colours of the objects stand out like neon against it."),
    # moonlight: dim blue-grey walls, cool blue light on the objects
    Palette("night", (("moonlit blue-grey", (0.3, 0.33, 0.42)), ("dusk grey", (0.28, 0.3, 0.37))),
            contrast=0.8, outside_dim=0.4, object_tint=(0.72, 0.8, 1.0),
            description="It is night: the room is dim and the light is a cool, bluish moonlight."),
)}
