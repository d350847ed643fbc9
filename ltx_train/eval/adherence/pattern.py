"""Environment layer: the wall pattern's orientation statistics."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ltx_train.eval.look import grey
from ltx_train.eval.look import object_pixels as saturated_pixels


@dataclass
class PatternFeatures:
    coherence: float                 # structure-tensor coherence: 1 = one orientation everywhere (stripes)
    axis_aligned: float              # share of gradient energy along the x / y axes (tiles, bricks: high)
    vertical: float                  # share of gradient energy along y, i.e. horizontal edges (brick rows)

    def pattern(self) -> str:
        """A decision tree on the three statistics; every split has a wide margin on rendered walls
        (10th-90th percentiles at 64 px, seeds 0-149: coherence stripes 0.91-0.96, marble 0.74-0.87,
        bricks 0.48-0.59, tiles and dots <= 0.43; vertical share bricks 0.65-0.74, the rest ~0.5 but
        marble up to 0.61 and stripes anything; axis share tiles 0.77-0.86, dots 0.48-0.50)."""
        if self.coherence >= 0.88:
            return "stripes"
        if self.vertical >= 0.6 and self.axis_aligned >= 0.6:
            return "bricks"
        if self.coherence >= 0.65:
            return "marble"
        return "checkered tiles" if self.axis_aligned >= 0.65 else "polka dots"


def pattern_features(frame: np.ndarray) -> PatternFeatures:
    """Orientation statistics of the back wall in one frame (objects and a 3-pixel border left out),
    from the gradients of the lightly blurred grey frame, averaged over 2-pixel neighbourhoods. They
    do not depend on the wall's colour, contrast or tile size, so they hold under every palette."""
    g = grey(frame)
    wall = ~ndimage.binary_dilation(saturated_pixels(frame), iterations=3)
    wall[:3], wall[-3:], wall[:, :3], wall[:, -3:] = False, False, False, False
    gy, gx = np.gradient(ndimage.gaussian_filter(g, 0.7))
    jxx, jxy, jyy = (ndimage.gaussian_filter(a, 2.0)[wall] for a in (gx * gx, gx * gy, gy * gy))
    coherence = float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2).sum() / max((jxx + jyy).sum(), 1e-9))
    angle, energy = np.arctan2(gy, gx)[wall], (gx * gx + gy * gy)[wall]
    total = max(float(energy.sum()), 1e-9)
    return PatternFeatures(coherence, float((energy * np.cos(2 * angle) ** 2).sum() / total),
                           float((energy * np.sin(angle) ** 2).sum() / total))
