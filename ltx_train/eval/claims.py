"""What a synthetic-world caption claims, layer by layer: ``parse_caption`` reads a caption of
``ltx_train.data.captions`` back into ``Claims``, and ``claims_from_annotations`` gives the same claims
from a real clip's annotation JSON, so that ``ltx_train.eval.adherence`` judges real and generated
clips on identical statements."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from ltx_train.data.captions import CAMERA_WORDS, GRAVITY_WORDS, MAX_TIMED_CONTACTS, SURFACE_WORDS
from ltx_train.data.synth_palette import PALETTES
from ltx_train.data.synth_world import BACKGROUNDS, MATERIALS, PALETTE, SHAPES


@dataclass(frozen=True)
class ObjectClaim:
    color_name: str                  # key of synth_world.PALETTE
    material: str
    shape: str                       # ball | box


@dataclass(frozen=True)
class ContactClaim:
    time: float                      # as the caption states it: rounded to 0.1 s ("right at the start" = 0.0)
    object: int                      # index into Claims.objects
    surface: str                     # floor | ceiling | left_wall | right_wall


@dataclass(frozen=True)
class Claims:
    """What a synthetic-world caption says, layer by layer; None = the caption does not say."""
    objects: tuple[ObjectClaim, ...] | None = None
    gravity: str | None = None                   # down | up | left | right | tilted
    tilt: tuple[str, int] | None = None          # tilted gravity: (left | right, degrees off down, to 5)
    contacts: tuple[ContactClaim, ...] | None = None   # the timed events, in caption order; () = none at all
    more_contacts: int = 0                       # "After that there are N more impacts."
    quiet: tuple[int, ...] = ()                  # objects that never touch a wall
    wall_tone: str | None = None
    pattern: str | None = None                   # one of synth_world.BACKGROUNDS
    palette: str | None = None                   # key of synth_palette.PALETTES
    light_side: str | None = None                # left | centre | right  (light x < 0.4, 0.4..0.6, > 0.6 of the width)
    light_above: bool | None = None              # light y < 0.2 of the height ("from above"), else "upper"/"front"
    shadows: str | None = None                   # soft | crisp
    camera: str | None = None                    # one of synth_world.CAMERA_MOTIONS

    @property
    def count(self) -> int | None:
        return None if self.objects is None else len(self.objects)

    @property
    def first_contact(self) -> ContactClaim | None:
        return self.contacts[0] if self.contacts else None

    @property
    def num_contacts(self) -> int | None:
        return None if self.contacts is None else len(self.contacts) + self.more_contacts

    def gravity_vector(self) -> np.ndarray | None:
        """(2,) unit screen vector (x right, y down) of the stated gravity, or None."""
        if self.gravity is None:
            return None
        if self.gravity == "tilted":
            if self.tilt is None:
                return None
            a = np.radians(self.tilt[1])
            return np.array([np.sin(a) * (-1.0 if self.tilt[0] == "left" else 1.0), np.cos(a)])
        return np.array({"down": (0.0, 1.0), "up": (0.0, -1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}[self.gravity])

    def to_dict(self) -> dict:
        return asdict(self)


COLOUR_BY_RGB = {rgb: name for name, rgb in PALETTE.items()}


def light_side(x: float) -> str:
    """The caption's horizontal light words: x is the light's position as a fraction of the box width."""
    return "left" if x < 0.4 else "right" if x > 0.6 else "centre"


def claims_from_annotations(ann: dict, where: str = "annotations") -> Claims:
    """The claims the generator's caption makes, computed from a clip's annotation JSON (``data/README.md``).

    Gives exactly ``parse_caption(caption)`` for the clip's own caption (the test checks it on many
    scenes), so real clips and generated clips are judged on the same statements; keys the JSON lacks
    (older shards without ``color_name``, ``depth``, ``background`` or ``palette``) leave that claim None.
    """
    try:
        objs = ann["objects"]
        objects = tuple(ObjectClaim(o.get("color_name") or COLOUR_BY_RGB[tuple(int(c) for c in o["color"])],
                                    o["material"], o["shape"]) for o in objs)
        raw = list(ann.get("contacts", []))
        contacts = tuple(ContactClaim(round(float(c["time"]), 1), int(c["object"]), c["surface"])
                         for c in raw[:MAX_TIMED_CONTACTS])
        touching = {int(c["object"]) for c in raw}
        quiet = tuple(i for i in range(len(objects)) if i not in touching)
        gravity, tilt = ann.get("gravity_name"), None
        if gravity == "tilted":
            g = np.asarray(ann["gravity"], dtype=np.float64)
            angle = np.degrees(np.arctan2(abs(g[0]), g[1]))
            tilt = ("left" if g[0] < 0 else "right", int(5 * round(angle / 5)))
        tone = pattern = None
        if ann.get("background"):
            tone, pattern = _split_background(ann["background"])
        lx, ly, lz = (float(v) for v in ann["light"])
        shadows = None
        if all("depth" in o for o in objs):
            spread = np.mean([o["depth"] / (lz - o["depth"]) for o in objs])
            shadows = "soft" if spread > 0.1 else "crisp"
        camera = ann.get("camera", {}).get("motion")
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f"{where}: not a synthetic-world annotation ({type(e).__name__}: {e})") from e
    return Claims(objects=objects, gravity=gravity, tilt=tilt, contacts=contacts,
                  more_contacts=max(0, len(raw) - MAX_TIMED_CONTACTS), quiet=quiet, wall_tone=tone,
                  pattern=pattern, palette=ann.get("palette"), light_side=light_side(lx), light_above=ly < 0.2,
                  shadows=shadows, camera=camera)


def _split_background(text: str) -> tuple[str, str]:
    """'sand polka dots' -> ('sand', 'polka dots'): wall tones may have spaces, patterns end the text."""
    for pattern in BACKGROUNDS:
        if text.endswith(" " + pattern):
            return text[: -len(pattern) - 1], pattern
    raise ValueError(f"background {text!r} does not end with one of {BACKGROUNDS}")


# ----------------------------------------------------------------------------- caption parser
_COLOURS = "|".join(PALETTE)
_OBJ = rf"({_COLOURS}) ({'|'.join(MATERIALS)}) ({'|'.join(SHAPES)})"
_SUBJECT = re.compile(r"\b((?:an? " + _OBJ + r"(?:, | and )?)+) moves? inside a closed box\.", re.IGNORECASE)
_OBJ_RE = re.compile(r"\b" + _OBJ + r"\b", re.IGNORECASE)
_SURFACE_BY_WORDS = {words: name for name, words in SURFACE_WORDS.items()}
_EVENT = re.compile(r"\b(right at the start|after (\d+(?:\.\d+)?) seconds?) the " + _OBJ
                    + r" (?:hits|strikes|bounces off|lands on|smacks into) ("
                    + "|".join(SURFACE_WORDS.values()) + r")\b", re.IGNORECASE)
_MORE = re.compile(r"\bAfter that there are (\d+) more impacts\.", re.IGNORECASE)
_QUIET = re.compile(r"(?:^|[.;]\s+)The ([^.;]*?) never touch(?:es)? a wall\.", re.IGNORECASE)
_NOTHING = re.compile(r"\bNothing touches the walls during the clip\.", re.IGNORECASE)
_GRAVITY = {name: re.compile(re.escape(words) + r"\.", re.IGNORECASE) for name, words in GRAVITY_WORDS.items()}
_TILTED = re.compile(r"\bGravity is tilted, pulling down and to the (left|right) at about (\d+) degrees\.",
                     re.IGNORECASE)
_WALL = re.compile(r"\bThe back wall is covered in (.+?) (" + "|".join(BACKGROUNDS) + r"),", re.IGNORECASE)
_LIGHT = re.compile(r"\bThe scene is lit (from above and to the (left|right)|from directly above|from the upper "
                    r"(left|right)|from the front) by (?:a point light|a single lamp), casting (soft|crisp) shadows",
                    re.IGNORECASE)
_CAMERA = {sentence.lower(): motion for motion, sentences in CAMERA_WORDS.items() for sentence in sentences}


def parse_caption(text: str) -> Claims:
    """A synthetic-world caption (``ltx_train.data.captions``) -> its claims.

    Each layer is read by its own sentence pattern, wherever it is in the text, so a prompt that keeps
    some layers still parses; a layer whose sentence is missing is None (not stated), and that layer
    is then not judged for the clip. Object references in the action sentence are resolved by colour
    (a clip never repeats a colour).
    """
    objects = None
    m = _SUBJECT.search(text)
    if m:
        objects = tuple(ObjectClaim(c.lower(), mat.lower(), s.lower()) for c, mat, s in _OBJ_RE.findall(m.group(1)))
    index = {o.color_name: i for i, o in enumerate(objects or ())}

    gravity, tilt = None, None
    t = _TILTED.search(text)
    if t:
        gravity, tilt = "tilted", (t.group(1).lower(), int(t.group(2)))
    else:
        gravity = next((name for name, p in _GRAVITY.items() if p.search(text)), None)

    contacts, quiet = None, ()
    if _NOTHING.search(text):
        contacts, quiet = (), tuple(range(len(index)))
    else:
        events = []
        for e in _EVENT.finditer(text):
            colour = e.group(3).lower()
            if colour not in index:
                continue  # an event about an object the subject does not name: nothing to track it by
            when = 0.0 if e.group(2) is None else float(e.group(2))
            events.append(ContactClaim(when, index[colour], _SURFACE_BY_WORDS[e.group(6).lower()]))
        if events:
            contacts = tuple(events)
        q = _QUIET.search(text)
        if q:
            quiet = tuple(sorted(index[c.lower()] for c, _, _ in _OBJ_RE.findall(q.group(1)) if c.lower() in index))
    more = _MORE.search(text)

    tone = pattern = None
    w = _WALL.search(text)
    if w:
        tone, pattern = w.group(1).lower(), w.group(2).lower()
    palette = None
    if w:  # the default look adds no sentence; another look adds its description after the wall sentence
        palette = next((name for name, p in PALETTES.items() if p.description and p.description in text), "default")

    side = above = shadows = None
    li = _LIGHT.search(text)
    if li:
        where = li.group(1).lower()
        above = where.startswith("from above") or where == "from directly above"
        side = (li.group(2) or li.group(3) or "centre").lower()
        shadows = li.group(4).lower()

    camera = next((motion for sentence, motion in _CAMERA.items() if sentence in text.lower()), None)
    return Claims(objects=objects, gravity=gravity, tilt=tilt, contacts=contacts,
                  more_contacts=int(more.group(1)) if more else 0, quiet=quiet, wall_tone=tone, pattern=pattern,
                  palette=palette, light_side=side, light_above=above, shadows=shadows, camera=camera)
