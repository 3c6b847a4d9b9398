"""The vocabulary of the synthetic world, scenes, and its seed streams.

A scene is ``count`` objects of one ``shape`` and ``colour`` and ``size``, grouped at a
``position`` of the frame, over a ``background`` texture. Every random step draws from a numpy
``Generator`` built by ``rng_for(seed, stream, *index)``; distinct streams (pool, eval tasks,
curated sets, downstream set) never share draws, so evaluation data is held out from the pool
even when the configured seeds coincide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond")

#: colour name -> RGB (saturated, all far from the grey backgrounds)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (35, 70, 230),
    "yellow": (245, 220, 30),
    "purple": (145, 40, 185),
    "orange": (250, 135, 20),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

COUNTS: tuple[int, ...] = (1, 2, 3, 4)
COUNT_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}

SIZES: tuple[str, ...] = ("small", "large")
#: object radius as a fraction of the scene square's side
SIZE_RADIUS: dict[str, float] = {"small": 0.075, "large": 0.13}

POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "centre")
#: region of the scene square (x0, y0, x1, y1) in [0, 1] where a position's objects are placed
POSITION_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "left": (0.0, 0.12, 0.46, 0.88),
    "right": (0.54, 0.12, 1.0, 0.88),
    "top": (0.12, 0.0, 0.88, 0.46),
    "bottom": (0.12, 0.54, 0.88, 1.0),
    "centre": (0.24, 0.24, 0.76, 0.76),
}

BACKGROUNDS: tuple[str, ...] = ("plain", "stripes", "dots", "grid", "noise")
#: adjective used for a background in captions and class names
BACKGROUND_ADJECTIVES: dict[str, str] = {
    "plain": "plain",
    "stripes": "striped",
    "dots": "dotted",
    "grid": "grid",
    "noise": "noisy",
}

DIGITS: tuple[str, ...] = tuple(str(d) for d in range(10))
DIGIT_WORDS: dict[str, str] = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
}
#: words shown on "word sign" images (besides the colour and shape words)
SIGN_WORDS: tuple[str, ...] = ("stop", "open", "sale", "exit", "hello", "cafe", "hotel", "taxi")

# Seed streams: the second entropy word of every Generator.
STREAM_POOL = 1
STREAM_TASK = 2
STREAM_CURATED = 3
STREAM_DOWNSTREAM = 4


def rng_for(seed: int, stream: int, *index: int) -> np.random.Generator:
    """A Generator for one (seed, stream, index...) cell; same arguments, same draws."""
    return np.random.default_rng([int(seed), int(stream), *(int(i) for i in index)])


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    count: int
    size: str
    position: str
    background: str

    def as_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "Scene":
        d = self.as_dict()
        d.update(changes)
        return Scene(**d)


ATTRIBUTES: dict[str, tuple] = {
    "shape": SHAPES,
    "colour": COLOUR_NAMES,
    "count": COUNTS,
    "size": SIZES,
    "position": POSITIONS,
    "background": BACKGROUNDS,
}


def random_scene(rng: np.random.Generator, **fixed) -> Scene:
    """A uniformly random scene; attributes in ``fixed`` are kept as given."""
    values = {}
    for name, choices in ATTRIBUTES.items():
        if name in fixed:
            if fixed[name] not in choices:
                raise ValueError(f"unknown {name} {fixed[name]!r}; expected one of {choices}")
            values[name] = fixed[name]
        else:
            values[name] = choices[int(rng.integers(len(choices)))]
    return Scene(**values)


def other_value(rng: np.random.Generator, attribute: str, current) -> object:
    """A value of ``attribute`` different from ``current``."""
    choices = [c for c in ATTRIBUTES[attribute] if c != current]
    return choices[int(rng.integers(len(choices)))]


def object_class_names() -> list[str]:
    """The objects task's classes (the ImageNet analogue): every ``"{colour} {shape}"``."""
    return [f"{c} {s}" for c in COLOUR_NAMES for s in SHAPES]
