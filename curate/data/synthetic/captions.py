"""Captions of the synthetic world: a small grammar with real paraphrase variety.

``canonical_caption`` gives one fixed wording per scene (the ground truth); ``paraphrase`` draws
one of many wordings: sentence frames, synonyms for colours / shapes / sizes / counts, optional
attributes and plural forms ("two small red circles on a striped background", "a pair of tiny
crimson discs, left side", "red circles, two of them"). Clean captions never contain the medium
phrases ("photo", "image", "picture", "stock") that ``medium_phrase_caption`` mixes in.
Every paraphrase names the colour and the shape.
"""

from __future__ import annotations

import numpy as np

from .world import BACKGROUND_ADJECTIVES, COUNT_WORDS, DIGIT_WORDS, Scene

# synonyms: the first entry is the canonical word ------------------------------------------
COLOUR_SYNONYMS: dict[str, list[str]] = {
    "red": ["red", "crimson", "scarlet"],
    "green": ["green", "emerald", "lime"],
    "blue": ["blue", "azure", "cobalt"],
    "yellow": ["yellow", "golden", "lemon"],
    "purple": ["purple", "violet", "lilac"],
    "orange": ["orange", "amber", "tangerine"],
    "white": ["white", "snowy", "ivory"],
    "black": ["black", "jet-black", "ebony"],
}
#: (singular, plural) forms
SHAPE_SYNONYMS: dict[str, list[tuple[str, str]]] = {
    "circle": [("circle", "circles"), ("disc", "discs"), ("round shape", "round shapes")],
    "square": [("square", "squares"), ("box", "boxes"), ("block", "blocks")],
    "triangle": [("triangle", "triangles"), ("three-sided shape", "three-sided shapes"), ("wedge", "wedges")],
    "star": [("star", "stars"), ("five-pointed star", "five-pointed stars"), ("star shape", "star shapes")],
    "cross": [("cross", "crosses"), ("plus sign", "plus signs"), ("plus shape", "plus shapes")],
    "diamond": [("diamond", "diamonds"), ("rhombus", "rhombuses"), ("lozenge", "lozenges")],
}
SIZE_SYNONYMS: dict[str, list[str]] = {
    "small": ["small", "tiny", "little"],
    "large": ["large", "big", "huge"],
}
COUNT_PHRASES: dict[int, list[str]] = {
    1: ["a", "one", "a single"],
    2: ["two", "a pair of", "a couple of"],
    3: ["three", "a trio of", "a group of three"],
    4: ["four", "a set of four", "a group of four"],
}
#: full phrases (used after the noun phrase)
POSITION_PHRASES: dict[str, list[str]] = {
    "left": ["on the left", "at the left", "on the left side"],
    "right": ["on the right", "at the right", "on the right side"],
    "top": ["at the top", "near the top", "along the top edge"],
    "bottom": ["at the bottom", "near the bottom", "along the bottom edge"],
    "centre": ["in the centre", "in the middle", "in the center"],
}
#: short phrases (used after a comma: "..., left side")
POSITION_SHORT: dict[str, list[str]] = {
    "left": ["left side", "left"],
    "right": ["right side", "right"],
    "top": ["top", "upper half"],
    "bottom": ["bottom", "lower half"],
    "centre": ["centre", "middle"],
}
BACKGROUND_SYNONYMS: dict[str, list[str]] = {
    "plain": ["plain", "blank", "solid grey"],
    "stripes": ["striped", "stripy", "lined"],
    "dots": ["dotted", "polka-dot", "spotted"],
    "grid": ["grid", "grid-patterned", "tiled"],
    "noise": ["noisy", "grainy", "speckled"],
}
BACKDROP_WORDS = ["background", "backdrop"]

#: phrases naming the medium, as SIEVE masks them; never in a clean caption
MEDIUM_PHRASES = ("a photo of", "stock photo", "an image of", "a picture of", "photo", "image")

_VOWEL_SOUND = ("a", "e", "i", "o", "u")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in _VOWEL_SOUND else "a"


def _fix_articles(text: str) -> str:
    """Turn "a" into "an" before a vowel sound (and back)."""
    words = text.split(" ")
    for i in range(len(words) - 1):
        if words[i].lower() in ("a", "an"):
            art = _article(words[i + 1])
            words[i] = art.capitalize() if words[i][0].isupper() else art
    return " ".join(words)


def canonical_caption(scene: Scene) -> str:
    """The fixed wording: "two small red circles on the left, striped background"."""
    shape = scene.shape if scene.count == 1 else SHAPE_SYNONYMS[scene.shape][0][1]
    count = "one" if scene.count == 1 else COUNT_WORDS[scene.count]
    pos = POSITION_PHRASES[scene.position][0]
    bg = BACKGROUND_ADJECTIVES[scene.background]
    return f"{count} {scene.size} {scene.colour} {shape} {pos} on a {bg} background"


def noun_phrase(scene: Scene, rng: np.random.Generator, with_count: bool = True, with_size: bool = True) -> str:
    """[count] [size] colour shape, in a random wording, plural when count > 1."""
    colour = scene.colour if rng.random() < 0.5 else _pick(rng, COLOUR_SYNONYMS[scene.colour][1:])
    sing, plur = SHAPE_SYNONYMS[scene.shape][0] if rng.random() < 0.55 else _pick(rng, SHAPE_SYNONYMS[scene.shape][1:])
    noun = sing if scene.count == 1 else plur
    words = []
    if with_count or scene.count == 1:
        words.append(_pick(rng, COUNT_PHRASES[scene.count]) if with_count else "a")
    if with_size:
        words.append(scene.size if rng.random() < 0.5 else _pick(rng, SIZE_SYNONYMS[scene.size][1:]))
    words += [colour, noun]
    return _fix_articles(" ".join(words))


def _bg_phrase(scene: Scene, rng) -> str:
    adj = _pick(rng, BACKGROUND_SYNONYMS[scene.background])
    return f"{adj} {_pick(rng, BACKDROP_WORDS)}"


def paraphrase(scene: Scene, rng: np.random.Generator, force: tuple[str, ...] = ()) -> str:
    """A random wording of ``scene``. Attributes named in ``force`` (count, size, position,
    background) are always mentioned; colour and shape always are."""
    with_count = "count" in force or rng.random() < 0.85
    with_size = "size" in force or rng.random() < 0.6
    with_pos = "position" in force or rng.random() < 0.6
    with_bg = "background" in force or rng.random() < 0.5
    np_ = noun_phrase(scene, rng, with_count=with_count, with_size=with_size)
    pos = _pick(rng, POSITION_PHRASES[scene.position])
    bg = _bg_phrase(scene, rng)
    frames: list[str] = []
    if with_pos and with_bg:
        frames += [
            f"{np_} {pos} on a {bg}",
            f"{np_} {pos}, {bg}",
            f"{bg} with {np_} {pos}",
            f"there {'is' if scene.count == 1 else 'are'} {np_} {pos} on a {bg}",
        ]
    elif with_pos:
        frames += [
            f"{np_} {pos}",
            f"{np_}, {_pick(rng, POSITION_SHORT[scene.position])}",
            f"there {'is' if scene.count == 1 else 'are'} {np_} {pos}",
        ]
    elif with_bg:
        frames += [f"{np_} on a {bg}", f"{bg} with {np_}", f"{np_} against a {bg}"]
    else:
        frames += [np_, f"{np_} drawn flat"]
        if scene.count > 1 and not with_count:
            frames.append(f"simple {np_}")  # a bare plural: "simple red circles"
        if scene.count > 1 and with_count:
            # "red circles, two of them"
            colour = _pick(rng, COLOUR_SYNONYMS[scene.colour])
            plural = _pick(rng, SHAPE_SYNONYMS[scene.shape])[1]
            frames.append(f"{colour} {plural}, {COUNT_WORDS[scene.count]} of them")
    text = _pick(rng, frames)
    return _fix_articles(text)


def paraphrases(scene: Scene, rng: np.random.Generator, n: int, max_tries: int = 200) -> list[str]:
    """``n`` distinct paraphrases of a scene (count and colour/shape always mentioned)."""
    out: list[str] = []
    for _ in range(max_tries):
        text = paraphrase(scene, rng, force=("count",))
        if text not in out:
            out.append(text)
            if len(out) == n:
                return out
    raise RuntimeError(f"could not find {n} distinct paraphrases of {scene}")


# ---------------------------------------------------------------------------------------------
# Noisy captions
# ---------------------------------------------------------------------------------------------


def medium_phrase_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A correct caption with medium phrases mixed in ("a photo of ...", "... stock photo")."""
    base = paraphrase(scene, rng)
    for _ in range(20):  # "a photo of there are ..." reads badly: take a noun-phrase frame
        if not base.startswith("there "):
            break
        base = paraphrase(scene, rng)
    kind = int(rng.integers(6))
    if kind == 0:
        return f"a photo of {base}"
    if kind == 1:
        return f"stock photo: {base}"
    if kind == 2:
        return f"an image of {base}"
    if kind == 3:
        return f"{base} - stock photo"
    if kind == 4:
        return f"photo of {base}, image"
    return f"{base} image"


# German: (singular noun, plural noun, gender) ; adjective stems take -er/-es/-e after "ein"
_DE_SHAPES = {
    "circle": ("Kreis", "Kreise", "m"),
    "square": ("Quadrat", "Quadrate", "n"),
    "triangle": ("Dreieck", "Dreiecke", "n"),
    "star": ("Stern", "Sterne", "m"),
    "cross": ("Kreuz", "Kreuze", "n"),
    "diamond": ("Raute", "Rauten", "f"),
}
_DE_COLOURS = {
    "red": "rot",
    "green": "grün",
    "blue": "blau",
    "yellow": "gelb",
    "purple": "lila",
    "orange": "orange",
    "white": "weiß",
    "black": "schwarz",
}
_DE_COUNTS = {2: "zwei", 3: "drei", 4: "vier"}
_DE_POS = {"left": "links", "right": "rechts", "top": "oben", "bottom": "unten", "centre": "in der Mitte"}
_DE_SIZES = {"small": "klein", "large": "groß"}

_ES_SHAPES = {
    "circle": ("círculo", "círculos", "m"),
    "square": ("cuadrado", "cuadrados", "m"),
    "triangle": ("triángulo", "triángulos", "m"),
    "star": ("estrella", "estrellas", "f"),
    "cross": ("cruz", "cruces", "f"),
    "diamond": ("rombo", "rombos", "m"),
}
# (m sg, f sg, m pl, f pl)
_ES_COLOURS = {
    "red": ("rojo", "roja", "rojos", "rojas"),
    "green": ("verde", "verde", "verdes", "verdes"),
    "blue": ("azul", "azul", "azules", "azules"),
    "yellow": ("amarillo", "amarilla", "amarillos", "amarillas"),
    "purple": ("morado", "morada", "morados", "moradas"),
    "orange": ("naranja",) * 4,
    "white": ("blanco", "blanca", "blancos", "blancas"),
    "black": ("negro", "negra", "negros", "negras"),
}
_ES_COUNTS = {2: "dos", 3: "tres", 4: "cuatro"}
_ES_POS = {
    "left": "a la izquierda",
    "right": "a la derecha",
    "top": "arriba",
    "bottom": "abajo",
    "centre": "en el centro",
}
_ES_SIZES = {
    "small": ("pequeño", "pequeña", "pequeños", "pequeñas"),
    "large": ("grande", "grande", "grandes", "grandes"),
}

_FR_SHAPES = {
    "circle": ("cercle", "cercles", "m"),
    "square": ("carré", "carrés", "m"),
    "triangle": ("triangle", "triangles", "m"),
    "star": ("étoile", "étoiles", "f"),
    "cross": ("croix", "croix", "f"),
    "diamond": ("losange", "losanges", "m"),
}
_FR_COLOURS = {
    "red": ("rouge", "rouge", "rouges", "rouges"),
    "green": ("vert", "verte", "verts", "vertes"),
    "blue": ("bleu", "bleue", "bleus", "bleues"),
    "yellow": ("jaune", "jaune", "jaunes", "jaunes"),
    "purple": ("violet", "violette", "violets", "violettes"),
    "orange": ("orange",) * 4,
    "white": ("blanc", "blanche", "blancs", "blanches"),
    "black": ("noir", "noire", "noirs", "noires"),
}
_FR_COUNTS = {2: "deux", 3: "trois", 4: "quatre"}
_FR_POS = {"left": "à gauche", "right": "à droite", "top": "en haut", "bottom": "en bas", "centre": "au centre"}
_FR_SIZES = {"small": ("petit", "petite", "petits", "petites"), "large": ("grand", "grande", "grands", "grandes")}

NON_ENGLISH_LANGUAGES = ("de", "es", "fr")


def _form(gender: str, plural: bool) -> int:
    return (2 if plural else 0) + (1 if gender == "f" else 0)


def non_english_caption(scene: Scene, rng: np.random.Generator) -> tuple[str, str]:
    """The scene described in German, Spanish or French; returns (caption, language)."""
    lang = _pick(rng, NON_ENGLISH_LANGUAGES)
    plural = scene.count > 1
    with_size = rng.random() < 0.5
    with_pos = rng.random() < 0.6
    if lang == "de":
        sing, plur, gender = _DE_SHAPES[scene.shape]
        adjs = [_DE_SIZES[scene.size]] if with_size else []
        adjs.append(_DE_COLOURS[scene.colour])
        if plural:
            ending = "e"
            head = _DE_COUNTS[scene.count]
            noun = plur
        else:
            ending = {"m": "er", "n": "es", "f": "e"}[gender]
            head = "eine" if gender == "f" else "ein"
            noun = sing
        inflected = [a if a in ("lila", "orange") else a + ending for a in adjs]
        text = " ".join([head, *inflected, noun])
        if with_pos:
            text += " " + _DE_POS[scene.position]
    elif lang == "es":
        sing, plur, gender = _ES_SHAPES[scene.shape]
        f = _form(gender, plural)
        head = _ES_COUNTS[scene.count] if plural else ("una" if gender == "f" else "un")
        words = [head, plur if plural else sing, _ES_COLOURS[scene.colour][f]]
        if with_size:
            words.append(_ES_SIZES[scene.size][f])
        text = " ".join(words)
        if with_pos:
            text += " " + _ES_POS[scene.position]
    else:
        sing, plur, gender = _FR_SHAPES[scene.shape]
        f = _form(gender, plural)
        head = _FR_COUNTS[scene.count] if plural else ("une" if gender == "f" else "un")
        words = [head]
        if with_size:
            words.append(_FR_SIZES[scene.size][f])
        words += [plur if plural else sing, _FR_COLOURS[scene.colour][f]]
        text = " ".join(words)
        if with_pos:
            text += " " + _FR_POS[scene.position]
    return text, lang


def gibberish(rng: np.random.Generator) -> str:
    """Random lower-case letter strings: 3-8 "words" of 3-9 letters."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = []
    for _ in range(int(rng.integers(3, 9))):
        words.append("".join(letters[rng.integers(0, 26, size=int(rng.integers(3, 10)))]))
    return " ".join(words)


def empty_caption(rng: np.random.Generator) -> str:
    return _pick(rng, ["", " ", "  ", "\n", " \t "])


# ---------------------------------------------------------------------------------------------
# Signs and text in images
# ---------------------------------------------------------------------------------------------


def sign_caption(text: str, rng: np.random.Generator) -> str:
    """A caption saying what a sign shows: "a sign with the number 7", "the word stop"."""
    if text.isdigit() and len(text) == 1:
        word = DIGIT_WORDS[text]
        frames = [
            f"a sign with the number {text}",
            f"the digit {text}",
            f"the number {word}",
            f"a sign that says {text}",
            f"the number {text} written large",
            f"a board showing the digit {word}",
        ]
    else:
        frames = [
            f'a sign that says "{text}"',
            f"the word {text}",
            f"a sign with the word {text} on it",
            f'the text "{text}"',
            f"{text} written in big letters",
        ]
    return _pick(rng, frames)


def text_lines(scene: Scene) -> list[str]:
    """The words a text-in-image trap writes into the image: colour, then shape (plural if
    count > 1)."""
    noun = scene.shape if scene.count == 1 else SHAPE_SYNONYMS[scene.shape][0][1]
    return [scene.colour, noun]
