"""Drawing scenes, signs and text into RGB images with PIL and numpy.

Backgrounds are numpy arrays; objects are drawn into a 2x supersampled mask and box-filtered
down, so small shapes keep their outline; text uses PIL's built-in bitmap font (the same glyphs on
every machine), thickened and scaled up so that a tiny model can read it. Everything random comes
from the ``rng`` passed in; JPEG encoding uses a fixed quality, so the same arguments give the
same bytes.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from .world import COLOURS, POSITION_REGIONS, SIZE_RADIUS, Scene, other_value, random_scene

JPEG_QUALITY = 90
_SUPERSAMPLE = 2


def encode_jpeg(img: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------


def _grey(rng: np.random.Generator) -> np.ndarray:
    g = float(rng.integers(105, 156))
    tint = rng.integers(-8, 9, size=3)
    return np.clip(g + tint, 0, 255).astype(np.float32)


def background(width: int, height: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A (height, width, 3) float32 array with a grey texture of the given kind."""
    base = _grey(rng)
    img = np.empty((height, width, 3), dtype=np.float32)
    img[:] = base
    unit = min(width, height)
    contrast = float(rng.choice([-1.0, 1.0])) * float(rng.uniform(40, 55))
    other = np.clip(base + contrast, 0, 255)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "plain":
        pass
    elif kind == "stripes":
        period = unit * float(rng.uniform(0.14, 0.2))
        orient = int(rng.integers(3))
        coord = ys if orient == 0 else xs if orient == 1 else (xs + ys) / math.sqrt(2)
        phase = float(rng.uniform(0, period))
        mask = ((coord + phase) % period) < period / 2
        img[mask] = other
    elif kind == "dots":
        period = unit * float(rng.uniform(0.14, 0.18))
        radius = period * 0.24
        ox, oy = rng.uniform(0, period, size=2)
        dx = (xs + ox) % period - period / 2
        dy = (ys + oy) % period - period / 2
        img[dx * dx + dy * dy <= radius * radius] = other
    elif kind == "grid":
        period = unit * float(rng.uniform(0.14, 0.18))
        width_px = max(1.0, unit * 0.03)
        ox, oy = rng.uniform(0, period, size=2)
        mask = (((xs + ox) % period) < width_px) | (((ys + oy) % period) < width_px)
        img[mask] = other
    elif kind == "noise":
        noise = rng.normal(0.0, 30.0, size=(height, width, 1)).astype(np.float32)
        img += noise
    else:
        raise ValueError(f"unknown background {kind!r}")
    return img


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "triangle":
        return [(cx, cy - r), (cx + 0.95 * r, cy + 0.75 * r), (cx - 0.95 * r, cy + 0.75 * r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.62 * r, cy), (cx, cy + r), (cx - 0.62 * r, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang)))
        return pts
    return None


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        h = 0.85 * r
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    elif shape == "cross":
        w = 0.33 * r
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    else:
        poly = _shape_polygon(shape, cx, cy, r)
        if poly is None:
            raise ValueError(f"unknown shape {shape!r}")
        draw.polygon(poly, fill=fill)


def _grid_for(n: int, rw: float, rh: float) -> tuple[int, int]:
    best = None
    for rows in range(1, n + 1):
        cols = math.ceil(n / rows)
        score = (min(rw / cols, rh / rows), -(rows * cols))
        if best is None or score > best[0]:
            best = (score, (rows, cols))
    return best[1]


def layout(scene: Scene, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Object centres and radius ``(x, y, r)`` in unit coordinates of the scene square."""
    x0, y0, x1, y1 = POSITION_REGIONS[scene.position]
    rw, rh = x1 - x0, y1 - y0
    rows, cols = _grid_for(scene.count, rw, rh)
    cells = rng.permutation(rows * cols)[: scene.count]
    cw, ch = rw / cols, rh / rows
    base_r = SIZE_RADIUS[scene.size]
    out = []
    for cell in sorted(int(c) for c in cells):
        row, col = divmod(cell, cols)
        r = base_r * float(rng.uniform(0.92, 1.08))
        jx = max(0.0, cw / 2 - r) * 0.8
        jy = max(0.0, ch / 2 - r) * 0.8
        cx = x0 + (col + 0.5) * cw + float(rng.uniform(-jx, jx))
        cy = y0 + (row + 0.5) * ch + float(rng.uniform(-jy, jy))
        out.append((cx, cy, r))
    return out


def object_colour(colour: str, rng: np.random.Generator) -> np.ndarray:
    rgb = np.array(COLOURS[colour], dtype=np.float32)
    return np.clip(rgb + rng.integers(-12, 13, size=3), 0, 255)


def _composite(bg: np.ndarray, mask: Image.Image, colour: np.ndarray) -> np.ndarray:
    h, w = bg.shape[:2]
    if mask.size != (w, h):
        mask = mask.resize((w, h), Image.Resampling.BOX)
    a = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    return bg * (1.0 - a) + colour * a


def render_scene(scene: Scene, width: int, height: int | None, rng: np.random.Generator) -> Image.Image:
    """Draw ``scene`` into a ``width`` x ``height`` RGB image.

    The objects are laid out in the centred square of side ``min(width, height)``; the
    background fills the whole canvas (so a very wide image is mostly background).
    """
    height = width if height is None else height
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    bg = background(width, height, scene.background, rng)
    side = min(width, height)
    ox, oy = (width - side) / 2, (height - side) / 2
    ss = _SUPERSAMPLE
    mask = Image.new("L", (width * ss, height * ss), 0)
    draw = ImageDraw.Draw(mask)
    for cx, cy, r in layout(scene, rng):
        draw_shape(draw, scene.shape, (ox + cx * side) * ss, (oy + cy * side) * ss, r * side * ss, 255)
    arr = _composite(bg, mask, object_colour(scene.colour, rng))
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default_imagefont()  # bitmap font bundled with Pillow


@lru_cache(maxsize=1024)
def _text_glyphs(text: str, bold: bool) -> Image.Image:
    """The text in PIL's bitmap font, cropped to its ink; ``bold`` doubles vertical strokes."""
    font = _font()
    left, top, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), text, fill=255, font=font)
    if bold:  # OR each column with its left neighbour
        arr = np.asarray(canvas)
        thick = arr.copy()
        thick[:, 1:] = np.maximum(thick[:, 1:], arr[:, :-1])
        canvas = Image.fromarray(thick)
    bbox = canvas.getbbox()
    return canvas.crop(bbox) if bbox else canvas


def text_mask(text: str, box_w: int, box_h: int) -> Image.Image:
    """An "L" mask of ``text`` scaled to fit ``box_w`` x ``box_h`` (aspect kept).

    Large scales keep the bitmap glyphs crisp (nearest neighbour, then a light blur); small
    scales use bold glyphs so that strokes survive the model's downsampling.
    """
    plain = _text_glyphs(text, False)
    gw, gh = plain.size
    scale = min(box_w / gw, box_h / gh)
    glyphs = plain if scale >= 3 else _text_glyphs(text, True)
    gw, gh = glyphs.size
    scale = min(box_w / gw, box_h / gh)
    tw, th = max(1, int(round(gw * scale))), max(1, int(round(gh * scale)))
    if scale >= 3:
        big = glyphs.resize((tw, th), Image.Resampling.NEAREST)
        return big.filter(ImageFilter.BoxBlur(max(1, int(scale / 4))))
    return glyphs.resize((tw, th), Image.Resampling.BILINEAR)


def _paste_text(
    arr: np.ndarray, lines: list[str], box: tuple[int, int, int, int], colour: np.ndarray, rng
) -> np.ndarray:
    """Draw ``lines`` stacked in ``box`` (x0, y0, x1, y1) of the float array ``arr``."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    n = len(lines)
    line_h = bh / n
    mask = np.zeros(arr.shape[:2], dtype=np.float32)
    for i, line in enumerate(lines):
        m = text_mask(line, max(1, int(bw)), max(1, int(line_h * 0.85)))
        mw, mh = m.size
        px = x0 + int((bw - mw) / 2 + rng.uniform(-0.05, 0.05) * (bw - mw))
        py = y0 + int(i * line_h + (line_h - mh) / 2)
        px = min(max(px, 0), arr.shape[1] - mw)
        py = min(max(py, 0), arr.shape[0] - mh)
        sub = mask[py : py + mh, px : px + mw]
        np.maximum(sub, np.asarray(m, dtype=np.float32)[: sub.shape[0], : sub.shape[1]] / 255.0, out=sub)
    a = mask[..., None]
    return arr * (1.0 - a) + colour * a


def _ink_and_paper(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() < 0.5:
        paper = rng.uniform(215, 250, size=3)
        ink = rng.uniform(0, 60, size=3)
    else:
        paper = rng.uniform(0, 50, size=3)
        ink = rng.uniform(210, 255, size=3)
    return ink.astype(np.float32), paper.astype(np.float32)


def render_sign(text: str, width: int, height: int | None, rng: np.random.Generator) -> Image.Image:
    """A sign showing ``text`` (a digit or a word) large and centred, on a plain or textured
    board; ``text`` may hold several lines separated by ``\\n``."""
    height = width if height is None else height
    ink, paper = _ink_and_paper(rng)
    arr = np.empty((height, width, 3), dtype=np.float32)
    arr[:] = paper
    if rng.random() < 0.3:  # a faint texture on the board
        tex = background(width, height, str(rng.choice(["stripes", "dots", "grid", "noise"])), rng)
        arr = 0.85 * arr + 0.15 * tex
    lines = text.split("\n")
    longest = max(len(line) for line in lines)
    fill_w = float(rng.uniform(0.55, 0.8)) if longest <= 1 else float(rng.uniform(0.8, 0.94))
    fill_h = float(rng.uniform(0.55, 0.8)) if len(lines) == 1 else 0.85
    bw, bh = int(width * fill_w), int(height * fill_h)
    x0 = int((width - bw) / 2 + rng.uniform(-0.4, 0.4) * (width - bw) / 2)
    y0 = int((height - bh) / 2 + rng.uniform(-0.4, 0.4) * (height - bh) / 2)
    arr = _paste_text(arr, lines, (x0, y0, x0 + bw, y0 + bh), ink, rng)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def overlay_text(img: Image.Image, lines: list[str], rng: np.random.Generator, where: str | None = None) -> Image.Image:
    """Write ``lines`` on a label band across an image (the text-in-image case).

    The band covers 42-48% of the height, in the ``where`` half ("top" or "bottom"; random
    when None), so a scene drawn in the other half stays visible.
    """
    arr = np.asarray(img.convert("RGB"), dtype=np.float32).copy()
    h, w = arr.shape[:2]
    ink, paper = _ink_and_paper(rng)
    band_h = max(2, int(h * float(rng.uniform(0.42, 0.48))))
    if where is None:
        where = "top" if rng.random() < 0.5 else "bottom"
    if where not in ("top", "bottom"):
        raise ValueError(f"where must be 'top' or 'bottom', got {where!r}")
    slack = max(0, h // 2 - band_h)
    y0 = int(rng.integers(0, slack + 1))
    if where == "bottom":
        y0 = h - band_h - y0
    margin = max(1, int(w * 0.04))
    arr[y0 : y0 + band_h, :] = paper
    arr = _paste_text(arr, lines, (margin, y0 + 1, w - margin, y0 + band_h - 1), ink, rng)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")


def render_text_in_image(
    claimed: Scene, width: int, height: int | None, rng: np.random.Generator
) -> tuple[Image.Image, Scene, list[str]]:
    """The text-in-image trap: the words of ``claimed`` (colour, shape) written on a band over
    an UNRELATED scene (another colour and another shape, drawn in the top or bottom half, the
    band in the other half). Returns the image, the scene drawn, and the written lines."""
    from .captions import text_lines

    position = "top" if rng.random() < 0.5 else "bottom"
    scene = random_scene(
        rng,
        shape=other_value(rng, "shape", claimed.shape),
        colour=other_value(rng, "colour", claimed.colour),
        position=position,
    )
    lines = text_lines(claimed)
    band = "bottom" if position == "top" else "top"
    img = overlay_text(render_scene(scene, width, height, rng), lines, rng, where=band)
    return img, scene, lines


# --------------------------------------------------------------------------------------------
# Degradations
# --------------------------------------------------------------------------------------------


def perturb(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A near-duplicate: a small shift (crop and resize back) and a brightness change."""
    w, h = img.size
    dx, dy = (int(v) for v in rng.integers(1, 4, size=2))
    left = int(rng.integers(0, dx + 1))
    top = int(rng.integers(0, dy + 1))
    crop = img.crop((left, top, w - (dx - left), h - (dy - top))).resize((w, h), Image.Resampling.BILINEAR)
    return ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.88, 1.12)))


def corrupt_bytes(jpg: bytes, rng: np.random.Generator) -> bytes:
    """Bytes no decoder accepts: a truncated JPEG, or a JPEG header followed by garbage."""
    if rng.random() < 0.5:
        cut = int(len(jpg) * float(rng.uniform(0.2, 0.6)))
        return jpg[: max(cut, 4)]
    garbage = rng.integers(0, 256, size=int(rng.integers(200, 2000)), dtype=np.uint8).tobytes()
    return b"\xff\xd8\xff\xe0" + garbage
