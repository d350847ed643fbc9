"""Layered captions for synthetic clips: subject, action (with timing), environment, lighting, camera.

Each layer is a sentence built from the clip's own annotations, so the text is correct by
construction; word choices vary with a generator seeded by the clip seed, so captions are
deterministic but not all alike.
"""
from __future__ import annotations

import numpy as np

from ltx_train.data.synth_palette import PALETTES
from ltx_train.data.synth_world import Scene

MAX_TIMED_CONTACTS = 4   # later bounces are summarised, long clips would otherwise ramble
SOUNDS = {"rubber": ["with a soft thump", "with a rubbery bounce"],
          "metal": ["with a metallic clang", "with a ringing clank"],
          "clay": ["with a dull thud", "with a heavy splat"],
          "glass": ["with a bright clink", "with a glassy ping"]}
SURFACE_WORDS = {"floor": "the floor", "ceiling": "the ceiling", "left_wall": "the left wall",
                 "right_wall": "the right wall"}
SURFACE_NORMALS = {"floor": (0.0, 1.0), "ceiling": (0.0, -1.0), "left_wall": (-1.0, 0.0),
                   "right_wall": (1.0, 0.0)}  # outward, screen axes (y down)
GRAVITY_WORDS = {"down": "Gravity pulls downward", "up": "Gravity is reversed and pulls upward",
                 "left": "Gravity pulls sideways to the left", "right": "Gravity pulls sideways to the right"}
CAMERA_WORDS = {"static": ["The camera is static.", "The camera does not move."],
                "pan_left": ["The camera pans slowly to the left.", "The camera slides to the left."],
                "pan_right": ["The camera pans slowly to the right.", "The camera slides to the right."],
                "zoom_in": ["The camera slowly zooms in.", "The camera pushes in towards the scene."],
                "zoom_out": ["The camera slowly zooms out.", "The camera pulls back from the scene."]}


def time_phrase(t: float) -> str:
    """0.46 -> 'after 0.5 seconds', 1.02 -> 'after 1 second'; rounded to a tenth of a second."""
    r = round(t, 1)
    if r < 0.1:
        return "right at the start"
    if r == 1.0:
        return "after 1 second"
    return f"after {r:g} seconds"


def object_name(obj) -> str:
    return f"{obj.color_name} {obj.material} {obj.shape}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _gravity_sentence(scene: Scene) -> str:
    if scene.gravity_name in GRAVITY_WORDS:
        return GRAVITY_WORDS[scene.gravity_name] + "."
    side = "left" if scene.gravity[0] < 0 else "right"
    angle = np.degrees(np.arctan2(abs(scene.gravity[0]), scene.gravity[1]))
    return f"Gravity is tilted, pulling down and to the {side} at about {5 * round(angle / 5):.0f} degrees."


def _light_sentence(scene: Scene, rng: np.random.Generator) -> str:
    x, y = scene.light[0] / scene.aspect, scene.light[1]
    horiz = "left" if x < 0.4 else "right" if x > 0.6 else ""
    vert = "above" if y < 0.2 else "the upper" if y < 0.45 else ""
    if vert == "above":
        where = f"from above and to the {horiz}" if horiz else "from directly above"
    else:
        where = f"from the upper {horiz}" if horiz else "from the front"
    # same penumbra model as the renderer: width ~ depth / (light height - depth)
    spread = np.mean([o.depth / (scene.light[2] - o.depth) for o in scene.objects])
    softness = "soft" if spread > 0.1 else "crisp"
    noun = rng.choice(["a point light", "a single lamp"])
    return f"The scene is lit {where} by {noun}, casting {softness} shadows on the back wall."


def caption_layers(scene: Scene, contacts: list[dict]) -> dict[str, str]:
    """contacts: sorted by time, each with ``time``, ``object``, ``surface``. Returns one sentence per layer."""
    rng = np.random.default_rng([scene.seed, 3])
    names = [object_name(o) for o in scene.objects]
    art = [("an " if n[0] in "aeiou" else "a ") + n for n in names]
    who = _join(art)
    subject = f"{who[0].upper()}{who[1:]} {'moves' if len(names) == 1 else 'move'} inside a closed box."
    events = []
    for c in contacts[:MAX_TIMED_CONTACTS]:
        obj = scene.objects[c["object"]]
        falls_onto = np.dot(SURFACE_NORMALS[c["surface"]], scene.gravity) > 0.5 * np.linalg.norm(scene.gravity)
        if obj.material == "clay":  # clay barely bounces: it lands where gravity takes it, smacks elsewhere
            verb = "lands on" if falls_onto else "smacks into"
        else:
            verb = rng.choice(["hits", "strikes", "bounces off"])
        events.append(f"{time_phrase(c['time'])} the {names[c['object']]} {verb} "
                      f"{SURFACE_WORDS[c['surface']]} {rng.choice(SOUNDS[obj.material])}")
    gravity = _gravity_sentence(scene)
    if events:
        told = "; ".join(events)
        action = f"{gravity} {told[0].upper()}{told[1:]}."
        if len(contacts) > MAX_TIMED_CONTACTS:
            action += f" After that there are {len(contacts) - MAX_TIMED_CONTACTS} more impacts."
    else:
        action = f"{gravity} Nothing touches the walls during the clip."
    quiet = [names[i] for i in range(len(names)) if not any(c["object"] == i for c in contacts)]
    if events and quiet:
        action += f" The {_join(quiet)} never {'touches' if len(quiet) == 1 else 'touch'} a wall."
    environment = f"The back wall is covered in {scene.wall_tone} {scene.background}, " \
                  f"and every impact makes a sound over a quiet room hum."
    if PALETTES[scene.palette].description:  # the default look adds nothing, so its captions are unchanged
        environment += " " + PALETTES[scene.palette].description
    return {"subject": subject, "action": action, "environment": environment,
            "lighting": _light_sentence(scene, rng), "camera": str(rng.choice(CAMERA_WORDS[scene.camera]))}


CAPTION_LAYERS = ("subject", "action", "environment", "lighting", "camera")


def caption(scene: Scene, contacts: list[dict], drop: tuple[str, ...] = ()) -> str:
    """The clip's caption: its layers in order, less those named in ``drop``."""
    layers = caption_layers(scene, contacts)
    return " ".join(layers[k] for k in CAPTION_LAYERS if k not in drop)
