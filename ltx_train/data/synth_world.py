"""Scene sampling and exact kinematics of the synthetic physics world.

World units: one unit is the frame height at zoom 1. The world is the box [0, A] x [0, 1] with
A = width / height, x right and y down (screen convention), seen from the front; the box's back
wall is the plane z = 0 and z grows towards the viewer. Objects move in parallel depth planes, so
they never collide with each other, only with the four walls (which keeps every contact analytic).

Under constant gravity each axis is an independent parabola between bounces, so the next contact
with a wall is the smallest positive root of a quadratic: contact instants are exact, not snapped
to frames. A bounce flips the normal velocity with the object's restitution and damps the
tangential one a little (friction); once the rebound speed is tiny and gravity presses the object
against that wall, the axis comes to rest (no Zeno cascade of ever shorter bounces).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ltx_train.data.synth_palette import NUM_TONE_SLOTS, PALETTES

if TYPE_CHECKING:
    from ltx_train.data.synth import SynthConfig

# Saturated colours about 60 degrees of hue apart; a clip never uses one twice, so a tracker can
# find each object by colour. The background is kept low-saturation so it never matches them.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "yellow": (230, 210, 30), "green": (40, 190, 60),
    "cyan": (30, 195, 210), "blue": (40, 80, 230), "magenta": (215, 40, 200),
}


@dataclass(frozen=True)
class Material:
    restitution: float  # mean; each object jitters it by +-0.04
    friction: float     # fraction of tangential speed lost per bounce


MATERIALS: dict[str, Material] = {
    "rubber": Material(0.85, 0.05),
    "metal": Material(0.6, 0.03),
    "clay": Material(0.2, 0.3),
    "glass": Material(0.7, 0.02),
}
SHAPES = ("ball", "box")
SURFACES = ("left_wall", "right_wall", "ceiling", "floor")  # (axis 0 lo, hi, axis 1 lo, hi)
GRAVITY_NAMES = ("down", "up", "left", "right", "tilted")
GRAVITY_PROBS = (0.6, 0.1, 0.1, 0.1, 0.1)
CAMERA_MOTIONS = ("static", "pan_left", "pan_right", "zoom_in", "zoom_out")
CAMERA_PROBS = (0.4, 0.15, 0.15, 0.15, 0.15)
BACKGROUNDS = ("checkered tiles", "stripes", "polka dots", "bricks", "marble")
# Low-saturation wall tones of the default look: their chroma is < 10% of any object colour's, so
# they never pass for an object under a colour tracker. Other looks: synth_palette.PALETTES.
WALL_TONES = dict(PALETTES["default"].wall_tones)
REST_SPEED = 0.08        # world units/s: slower rebounds against gravity come to rest
MAX_EVENTS = 10_000


@dataclass
class Obj:
    shape: str
    material: str
    color_name: str
    color: tuple[int, int, int]
    size: float          # ball radius or box half-side, world units
    restitution: float
    depth: float         # z of the centre in front of the back wall
    p0: np.ndarray       # (2,) world position at t = 0
    v0: np.ndarray       # (2,) world velocity at t = 0


@dataclass
class Trajectory:
    """Piecewise parabola: segment k starts at t[k] in state p[k], v[k] with axes rest[k] frozen."""
    t: np.ndarray        # (K,)
    p: np.ndarray        # (K, 2)
    v: np.ndarray        # (K, 2)
    rest: np.ndarray     # (K, 2) bool
    contacts: list[dict] = field(default_factory=list)  # time, surface, speed (normal, world units/s)


@dataclass
class Scene:
    seed: int
    aspect: float
    duration: float
    gravity: np.ndarray          # (2,) acceleration, world units/s^2
    gravity_name: str
    light: np.ndarray            # (3,) world x, y and height z above the back wall
    camera: str
    pan_speed: float             # d(camera centre x)/dt, world units/s (negative = pan left)
    zoom_rate: float             # d(ln zoom)/dt, 1/s (positive = zoom in)
    background: str
    wall_tone: str               # name of the palette's wall tone
    objects: list[Obj]
    trajectories: list[Trajectory]
    palette: str = "default"     # key of synth_palette.PALETTES: how the scene is drawn


def _first_hit(p: float, v: float, a: float, lo: float, hi: float) -> tuple[float, int]:
    """Smallest tau > 0 at which p + v tau + a tau^2 / 2 reaches a wall while moving into it.

    Returns (tau, 0 for the lo wall / 1 for the hi wall); (inf, -1) if neither is reached. Requiring
    the velocity to point into the wall discards the zero root of the wall just bounced off.
    """
    best, side = np.inf, -1
    for s, target, into in ((0, lo, -1.0), (1, hi, 1.0)):
        c = p - target
        if a == 0.0:
            roots = [-c / v] if v != 0.0 else []
        else:
            disc = v * v - 2.0 * a * c
            if disc < 0.0:
                continue
            q = -0.5 * (v + np.copysign(np.sqrt(disc), v if v != 0.0 else 1.0))  # cancellation-free form
            roots = [q / (0.5 * a)] + ([c / q] if q != 0.0 else [])
        for r in roots:
            if 0.0 < r < best and (v + a * r) * into > 0.0:
                best, side = r, s
    return best, side


def simulate(obj: Obj, gravity: np.ndarray, aspect: float, duration: float) -> Trajectory:
    """Event-driven integration of one object until ``duration`` seconds."""
    lo = np.array([obj.size, obj.size])
    hi = np.array([aspect - obj.size, 1.0 - obj.size])
    e, keep = obj.restitution, 1.0 - MATERIALS[obj.material].friction
    t, p, v = 0.0, obj.p0.astype(np.float64).copy(), obj.v0.astype(np.float64).copy()
    rest = np.zeros(2, bool)
    ts, ps, vs, rs, contacts = [t], [p.copy()], [v.copy()], [rest.copy()], []
    for _ in range(MAX_EVENTS):
        hits = [(np.inf, -1) if rest[k] else _first_hit(p[k], v[k], gravity[k], lo[k], hi[k]) for k in (0, 1)]
        axis = int(np.argmin([h[0] for h in hits]))
        tau, side = hits[axis]
        if t + tau > duration:
            break
        acc = np.where(rest, 0.0, gravity)
        p, v, t = p + v * tau + 0.5 * acc * tau * tau, v + acc * tau, t + tau
        p[axis] = (lo if side == 0 else hi)[axis]      # no drift through the wall
        speed = abs(v[axis])
        pressed = gravity[axis] * (1 if side == 1 else -1) > 0
        contacts.append({"time": t, "surface": SURFACES[2 * axis + side], "speed": speed})
        v[axis] = -e * v[axis]
        v[1 - axis] *= keep
        if pressed and abs(v[axis]) < REST_SPEED:
            v[axis], rest[axis] = 0.0, True
        for store, value in ((ts, t), (ps, p.copy()), (vs, v.copy()), (rs, rest.copy())):
            store.append(value)
    return Trajectory(np.array(ts), np.array(ps), np.array(vs), np.array(rs), contacts)


def evaluate(traj: Trajectory, gravity: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World positions and velocities (len(times), 2) at the given times."""
    k = np.clip(np.searchsorted(traj.t, times, side="right") - 1, 0, len(traj.t) - 1)
    dt = (times - traj.t[k])[:, None]
    acc = np.where(traj.rest[k], 0.0, gravity[None])
    return traj.p[k] + traj.v[k] * dt + 0.5 * acc * dt * dt, traj.v[k] + acc * dt


def camera_transform(scene: Scene, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre (len(times), 2) in world units and zoom (len(times),); identity at t = 0."""
    cx = scene.aspect / 2 + scene.pan_speed * times
    centre = np.stack([cx, np.full_like(cx, 0.5)], -1)
    return centre, np.exp(scene.zoom_rate * times)


def to_screen(scene: Scene, times: np.ndarray, pos: np.ndarray, vel: np.ndarray):
    """World (T, N, 2) positions/velocities -> normalised screen coords and screen units per second."""
    c, z = camera_transform(scene, times)
    scale = np.array([1.0 / scene.aspect, 1.0])
    zz = z[:, None, None]
    rel = pos - c[:, None]
    screen = rel * zz * scale + 0.5
    dc = np.array([scene.pan_speed, 0.0])
    screen_vel = (vel * zz + rel * zz * scene.zoom_rate - dc * zz) * scale
    return screen, screen_vel


def _tilt(rng: np.random.Generator) -> float:
    """Degrees off "down" of a tilted gravity: 15-40, either side."""
    return rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 40.0)


def _sample_gravity(rng: np.random.Generator, seed: int, forced: str | None = None) -> tuple[np.ndarray, str]:
    """Draws the same numbers from ``rng`` whether or not ``forced`` overrides the name, so forcing
    gravity leaves the rest of the scene's random choices where they were."""
    name = GRAVITY_NAMES[rng.choice(len(GRAVITY_NAMES), p=GRAVITY_PROBS)]
    tilt = _tilt(rng) if name == "tilted" else None
    if forced is not None and forced != name:
        name = forced
        tilt = _tilt(np.random.default_rng([seed, 5])) if forced == "tilted" else None
    angle = {"down": 90.0, "up": -90.0, "left": 180.0, "right": 0.0}.get(name)
    if angle is None:
        angle = 90.0 + tilt
    mag = rng.uniform(3.0, 6.0)
    a = np.deg2rad(angle)
    g = mag * np.array([np.cos(a), np.sin(a)])
    return np.where(np.abs(g) < 1e-9, 0.0, g), name  # exact zeros: cos(90 deg) is 6e-17, not 0


def sample_scene(seed: int, cfg: "SynthConfig") -> Scene:
    """Everything random about a clip, drawn in a fixed order from one generator seeded by ``seed``."""
    rng = np.random.default_rng(seed)
    aspect, duration = cfg.width / cfg.height, cfg.num_frames / cfg.fps
    gravity, gravity_name = _sample_gravity(rng, seed, cfg.gravity)
    light = np.array([rng.uniform(0.1, 0.9) * aspect, rng.uniform(-0.2, 0.45), rng.uniform(1.3, 2.2)])
    camera = CAMERA_MOTIONS[rng.choice(len(CAMERA_MOTIONS), p=CAMERA_PROBS)]
    camera = cfg.camera or camera  # a forced motion still draws, so the other choices stay put
    # total camera travel is bounded so long clips do not lose the box
    pan = rng.uniform(0.1, 0.25) / duration
    zoom = np.log(rng.uniform(1.2, 1.5)) / duration
    pan_speed = {"pan_left": -pan, "pan_right": pan}.get(camera, 0.0)
    zoom_rate = {"zoom_in": zoom, "zoom_out": -zoom}.get(camera, 0.0)
    background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    wall_tone, _ = PALETTES[cfg.palette].tone(int(rng.integers(NUM_TONE_SLOTS)))
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    colours = rng.choice(len(PALETTE), size=n, replace=False)
    depths = np.sort(rng.uniform(0.1, 0.25, size=n))  # object 0 is nearest the back wall, drawn first
    objects, trajectories = [], []
    for i in range(n):
        shape = SHAPES[rng.integers(len(SHAPES))]
        material = list(MATERIALS)[rng.integers(len(MATERIALS))]
        size = rng.uniform(0.06, 0.11) * (0.9 if shape == "box" else 1.0)
        restitution = float(np.clip(MATERIALS[material].restitution + rng.uniform(-0.04, 0.04), 0.05, 0.95))
        name = list(PALETTE)[colours[i]]
        for _ in range(20):  # prefer launches that hit a wall within the clip
            p0 = np.array([rng.uniform(size + 0.05, aspect - size - 0.05), rng.uniform(size + 0.05, 0.55)])
            speed, ang = rng.uniform(0.2, 1.4), rng.uniform(0, 2 * np.pi)
            v0 = speed * np.array([np.cos(ang), np.sin(ang)])
            obj = Obj(shape, material, name, PALETTE[name], float(size), restitution, float(depths[i]), p0, v0)
            traj = simulate(obj, gravity, aspect, duration)
            if traj.contacts:
                break
        objects.append(obj)
        trajectories.append(traj)
    return Scene(seed, aspect, duration, gravity, gravity_name, light, camera, float(pan_speed),
                 float(zoom_rate), background, wall_tone, objects, trajectories, cfg.palette)
