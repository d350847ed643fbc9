"""Physics facts a synthetic-world prompt states: objects (colour, material, shape), gravity, bounces.

The caption grammar is the one ``ltx_train.data.captions`` writes ("A red rubber ball and a blue
metal box move inside a closed box. Gravity is tilted, pulling down and to the left at about 25
degrees. After 0.4 seconds the red rubber ball hits the floor ...; ... After that there are 3 more
impacts."), with a few looser phrasings ("bounces 3 times", "falls upward") so hand-written prompts
in the same vocabulary also parse. Colour words map to the generator's palette, which is what a
tracker must look for in the generated frames.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ltx_train.data.synth_world import MATERIALS, PALETTE

SHAPE_WORDS = {"ball": "ball", "sphere": "ball", "box": "box", "cube": "box", "block": "box"}
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_NUM = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
_OBJECT = re.compile(r"\b(" + "|".join(PALETTE) + r")\s+(?:(" + "|".join(MATERIALS) + r")\s+)?("
                     + "|".join(SHAPE_WORDS) + r")\b", re.IGNORECASE)
_TIMED_EVENT = re.compile(r"\b(?:after \d+(?:\.\d+)? seconds?|right at the start)\b", re.IGNORECASE)
_MORE_IMPACTS = re.compile(r"\bafter that there (?:are|is) " + _NUM + r" more impacts?\b", re.IGNORECASE)
_BOUNCES_TIMES = re.compile(r"\b(?:bounces?|impacts?|hits?)\s+" + _NUM + r" times?\b", re.IGNORECASE)
_NO_CONTACT = re.compile(r"\bnothing touches\b", re.IGNORECASE)
_TILTED = re.compile(r"tilted.*?\b(left|right)\b.*?(\d+(?:\.\d+)?)\s*degrees", re.IGNORECASE)
_GRAVITY_WORDS = {"up": "up|upward|upwards|reversed", "left": "to the left|leftward|leftwards",
                  "right": "to the right|rightward|rightwards", "down": "down|downward|downwards"}
_GRAVITY_DIRS = [(name, re.compile(r"gravity[^.]*\b(?:" + words + r")\b", re.IGNORECASE))
                 for name, words in _GRAVITY_WORDS.items()]   # "down" last: "upside down" is up
GRAVITY_VECTORS = {"down": (0.0, 1.0), "up": (0.0, -1.0), "left": (-1.0, 0.0), "right": (1.0, 0.0)}


@dataclass(frozen=True)
class ObjectFact:
    color_name: str
    color: tuple[int, int, int]
    material: str | None
    shape: str


@dataclass(frozen=True)
class PromptFacts:
    objects: tuple[ObjectFact, ...]
    gravity_name: str | None          # down | up | left | right | tilted, None if not stated
    gravity: np.ndarray | None        # (2,) unit screen vector (x right, y down)
    bounces: int | None               # total impacts the prompt promises, None if it does not say

    @property
    def colors(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(o.color for o in self.objects)


def parse_objects(text: str) -> tuple[ObjectFact, ...]:
    """Distinct objects named "<colour> [material] <shape>", in order of first mention. A colour
    names one object (the generator never repeats a colour in a clip)."""
    seen: dict[str, ObjectFact] = {}
    for m in _OBJECT.finditer(text):
        name = m.group(1).lower()
        if name not in seen:
            material = m.group(2).lower() if m.group(2) else None
            seen[name] = ObjectFact(name, PALETTE[name], material, SHAPE_WORDS[m.group(3).lower()])
    return tuple(seen.values())


def gravity_from_tilt(side: str, degrees_from_down: float) -> np.ndarray:
    """'down and to the left at 25 degrees' -> unit screen vector."""
    a = np.radians(degrees_from_down)
    return np.array([np.sin(a) * (-1.0 if side == "left" else 1.0), np.cos(a)])


def parse_gravity(text: str) -> tuple[str | None, np.ndarray | None]:
    """(name, unit screen vector) of the gravity the prompt states; (None, None) if it does not.
    Only the sentence that mentions gravity is read, so "the camera pans to the left" is ignored."""
    sentence = next((s for s in re.split(r"(?<=[.;])\s+", text) if "gravity" in s.lower()), None)
    if sentence is None:
        return None, None
    tilt = _TILTED.search(sentence)
    if tilt:
        return "tilted", gravity_from_tilt(tilt.group(1).lower(), float(tilt.group(2)))
    for name, pattern in _GRAVITY_DIRS:
        if pattern.search(sentence):
            return name, np.array(GRAVITY_VECTORS[name])
    return None, None


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBER_WORDS[word.lower()]


def parse_bounces(text: str) -> int | None:
    """Total number of impacts: timed events plus "N more impacts"; "bounces N times" for loose
    prompts; 0 when the prompt says nothing touches the walls; None when it does not say."""
    if _NO_CONTACT.search(text):
        return 0
    timed = len(_TIMED_EVENT.findall(text))
    more = _MORE_IMPACTS.search(text)
    if timed or more:
        return timed + (_number(more.group(1)) if more else 0)
    loose = _BOUNCES_TIMES.search(text)
    return _number(loose.group(1)) if loose else None


def parse_prompt(text: str) -> PromptFacts:
    name, vector = parse_gravity(text)
    return PromptFacts(parse_objects(text), name, vector, parse_bounces(text))
