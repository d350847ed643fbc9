"""Thresholds of the adherence measurements (``AdherenceConfig``) and the layer names."""
from __future__ import annotations

from dataclasses import dataclass

from ltx_train.eval.physics_eval import ANGLE_TOLERANCE_DEG

LAYERS = ("subject", "action", "environment", "lighting", "camera", "timing")


@dataclass(frozen=True)
class AdherenceConfig:
    """Thresholds of the frame measurements; each is explained where it is used."""
    min_presence: float = 0.15       # a colour is present when seen in this share of the frames (and >= 2)
    min_area: float = 0.003          # smallest median blob of an object, fraction of the frame (12 px at 64x64)
    second_blob: float = 0.3         # another blob of one colour is another object at >= this share of the largest
    wall_chroma: float = 0.04        # pixels this close to the wall's chromaticity are wall (see ``neutral_wall``)
    background_rgb: float = 40.0     # pixels this close to the modelled wall are wall (``wall_pixels``); 0 = off
    background_chroma: float = 0.2   # ... where the modelled wall is this close to the wall's chromaticity
    wall_blob_share: float = 0.5     # a blob this much modelled wall is wall speckle (``drop_wall_blobs``)
    box_corners: float = 1.18        # diagonal / axis extent between a disc's (~1.09 at 64 px) and a square's (~1.3)
    pan: float = 0.05                # total background shift, frame heights, above which the camera pans
    zoom: float = 0.09               # total |ln scale| of the background above which the camera zooms
    light_gain: float = 0.13         # ball brightness-centroid shift / radius per unit tan(light zenith angle)
    light_height: float = 1.58       # typical height of the light above an object, frame heights
    timing_tolerance_s: float = 0.25
    angle_tolerance_deg: float = ANGLE_TOLERANCE_DEG
