"""Action and timing layers: tracked objects' free flight, contacts and the wall touched."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ltx_train.eval.adherence.subject import object_colours
from ltx_train.eval.physics import combine_accelerations, fit_motion, track_objects
from ltx_train.eval.physics_eval import MIN_FIT_FRAMES, NOISE_FLOOR_PX


@dataclass
class ObjectMotion:
    """The tracked flight of one palette colour (``physics.track_objects`` + ``fit_motion``)."""
    color_name: str
    valid_frames: int
    contact_times: list[float]       # breaks between ballistic pieces, seconds
    contact_surfaces: list[str | None]   # the wall each break bounced off (``contact_surface``)

    @property
    def first_contact(self) -> float | None:
        return self.contact_times[0] if self.contact_times else None


def surface_from_velocities(before: np.ndarray, after: np.ndarray) -> str:
    """The wall of a contact from the velocity (2,) just before and just after it, screen axes (y down).

    A wall reverses (or, for clay, stops) the velocity along its normal and only damps the one along
    it (friction), so the normal is the axis that lost the larger share of its incoming speed;
    the wall is on the side the object was moving towards along that axis."""
    lost = np.array([(before[k] - after[k]) * np.sign(before[k]) / max(abs(before[k]), 0.05) for k in (0, 1)])
    axis = int(np.argmax(lost))
    if axis == 1:
        return "floor" if before[1] > 0 else "ceiling"
    return "right_wall" if before[0] > 0 else "left_wall"


def contact_surface(track: np.ndarray, fps: float, tc: float) -> str | None:
    """The wall of a contact at ``tc`` s, from the tracked positions (T, 2) on either side of it:
    the mean velocity over the two frame steps after the contact minus over the two before (raw
    differences, not the fitted pieces, whose parabolas are wild when only 3 points follow a break).
    None when fewer than 3 tracked frames lie on a side (a contact in the first or last frames)."""
    t = np.arange(len(track)) / fps
    ok = np.all(np.isfinite(track), axis=1)
    before, after = np.flatnonzero(ok & (t < tc))[-3:], np.flatnonzero(ok & (t > tc))[:3]
    if len(before) < 3 or len(after) < 3:
        return None
    v = lambda idx: (track[idx[-1]] - track[idx[0]]) / ((idx[-1] - idx[0]) / fps)  # noqa: E731
    return surface_from_velocities(v(before), v(after))


def measure_motion(frames: np.ndarray, fps: float, names: list[str], palette: str = "default"
                   ) -> tuple[dict[str, ObjectMotion], np.ndarray]:
    """Track the named palette colours, fit piecewise free flight and read off each contact's time and
    wall, with the physics evaluation's settings (noise floor, minimum frames); returns the motions and
    the pooled free-flight acceleration (2,) of every object fitted on enough frames (NaN if none)."""
    T, H, W, _ = frames.shape
    if not names:
        return {}, np.full(2, np.nan)
    targets = object_colours(palette)
    tracks = track_objects(frames, np.stack([targets[n] for n in names]))
    out, used = {}, []
    for k, name in enumerate(names):
        fit = fit_motion(tracks[:, k], fps, aspect=W / H, noise_floor=NOISE_FLOOR_PX / H)
        ok = fit.num_valid >= MIN_FIT_FRAMES
        times, surfaces = [], []
        if ok:
            used.append(fit)
            times = [float(tc) for tc in fit.contact_times]
            surfaces = [contact_surface(tracks[:, k] * np.array([W / H, 1.0]), fps, tc) for tc in times]
        out[name] = ObjectMotion(name, fit.num_valid, times, surfaces)
    accel, _ = combine_accelerations([s for f in used for s in f.segments])
    return out, np.asarray(accel, dtype=np.float64)
