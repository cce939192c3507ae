"""QR images of code payloads (PNG and SVG) and printable venue posters.

Error correction is level M, the level the 320-character payload budget was sized for (version
<= 13). Every code uses one fixed mask pattern (:data:`MASK_PATTERN`): ISO/IEC 18004 lets the
encoder pick any of the eight, and scoring all eight (what ``qrcode`` does by default) was most
of an image's CPU. PNGs are drawn from the module matrix at one pixel per module and scaled up,
not as one rectangle per module (the same pixels). Rendering is CPU-bound and synchronous;
:func:`render` runs it in a worker thread so the event loop is never blocked, and a small LRU
cache answers the repeated requests an app makes for the same code (one payload is typically
fetched as image a few times during its life).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import qrcode
import qrcode.constants
from PIL import Image, ImageDraw, ImageFont
from qrcode.image.svg import SvgPathFillImage

__all__ = [
    "BORDER",
    "BOX_SIZE",
    "MASK_PATTERN",
    "ImageFormat",
    "clear_cache",
    "qr_version",
    "render",
    "render_png",
    "render_svg",
    "render_venue_poster_png",
]

ImageFormat = Literal["png", "svg"]

#: Pixels per module in PNGs: a version-13 code is 616 px wide, sharp on any phone screen.
BOX_SIZE = 8
#: Quiet zone in modules; ISO/IEC 18004 requires 4 for reliable scanning.
BORDER = 4
#: The mask every code is drawn with (any of 0-7 is valid QR; scanners read the pattern from
#: the format information). Payloads are base64url text and Reed-Solomon bytes, close to
#: random bits, for which the eight masks score alike; 0 is the checkerboard.
MASK_PATTERN = 0
_CACHE_SIZE = 256
#: A module (0 light, 1 dark) as a grey pixel: white or black.
_MODULE_PIXELS = bytes([255, 0]) + bytes(254)
_POSTER_BOX_SIZE = 16
# Fonts that carry CJK glyphs, tried in order for poster titles (venue names are often Chinese).
_CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)


class _LruCache:
    """A tiny thread-safe LRU: renders happen in worker threads, look-ups on the event loop."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _LruCache(_CACHE_SIZE)


def clear_cache() -> None:
    """Forget every cached image (tests, or after changing rendering settings)."""
    _cache.clear()


#: The version ``qrcode``'s best fit chose for each shape of data (segments' modes and lengths):
#: the version depends on nothing else at level M, and finding it writes the data bit by bit
#: twice more, a quarter of a render.
_VERSIONS: dict[tuple[tuple[int, int], ...], int] = {}


def _qr(payload: str, *, box_size: int = BOX_SIZE, image_factory: type | None = None) -> qrcode.QRCode:
    code = qrcode.QRCode(
        version=None,  # smallest version that fits
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=box_size,
        border=BORDER,
        image_factory=image_factory,
        mask_pattern=MASK_PATTERN,
    )
    code.add_data(payload)
    shape = tuple((data.mode, len(data)) for data in code.data_list)
    version = _VERSIONS.get(shape)
    if version is None:
        version = _VERSIONS[shape] = int(code.best_fit())
    code.version = version
    code.make(fit=False)
    return code


def qr_version(payload: str) -> int:
    """The QR version (1-40) ``payload`` needs at level M; <= 13 for every valid code."""
    return int(_qr(payload).version)


def _png(payload: str) -> bytes:
    # The matrix with its quiet zone as one byte per module (0 black, 255 white), scaled by
    # nearest neighbour: the same 1-bit image qrcode's PilImage draws module by module.
    matrix = _qr(payload).get_matrix()
    size = len(matrix)
    modules = b"".join(map(bytes, matrix)).translate(_MODULE_PIXELS)  # rows of True/False
    image = (
        Image.frombytes("L", (size, size), modules)
        .resize((size * BOX_SIZE, size * BOX_SIZE), Image.Resampling.NEAREST)
        .convert("1", dither=Image.Dither.NONE)
    )
    buffer = io.BytesIO()
    # zlib level 1: a third less CPU than the default 6 for ~2.3 kB instead of ~1.7 kB.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _svg(payload: str) -> bytes:
    # One <path> on a white background: small, and readable on a dark-mode page.
    image = _qr(payload, image_factory=SvgPathFillImage).make_image()
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def _cached(payload: str, fmt: ImageFormat) -> bytes:
    key = (payload, fmt)
    image = _cache.get(key)
    if image is None:
        image = _png(payload) if fmt == "png" else _svg(payload)
        _cache.put(key, image)
    return image


def render_png(payload: str) -> bytes:
    """The QR code of ``payload`` as PNG bytes (black on white, level M, 4-module quiet zone)."""
    return _cached(payload, "png")


def render_svg(payload: str) -> bytes:
    """The QR code of ``payload`` as an SVG document (UTF-8 bytes)."""
    return _cached(payload, "svg")


async def render(payload: str, fmt: ImageFormat) -> bytes:
    """Render off the event loop; a cache hit is answered without a thread hop.

    Raises:
        ValueError: for a format other than ``png`` or ``svg``.
    """
    if fmt not in ("png", "svg"):
        raise ValueError(f"unsupported image format {fmt!r}")
    cached = _cache.get((payload, fmt))
    if cached is not None:
        return cached
    return await asyncio.to_thread(_cached, payload, fmt)


def _title_font(title: str, size: int, font_path: str | None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont | None:
    if font_path is not None:
        return ImageFont.truetype(font_path, size)
    for candidate in _CJK_FONTS:
        if Path(candidate).is_file():
            return ImageFont.truetype(candidate, size)
    # Pillow's bundled font has Latin glyphs only: better no title than a row of boxes.
    return ImageFont.load_default(size=size) if title.isascii() else None


def render_venue_poster_png(payload: str, title: str, *, font_path: str | None = None) -> bytes:
    """A printable venue poster: a large QR code with the venue name underneath.

    Args:
        payload: The venue code (``OC1:...``, type ``V``).
        title: The venue name. Drawn when a font with its glyphs is available (a CJK system font
            or ``font_path``); otherwise the poster carries the QR code alone.
        font_path: A TrueType/OpenType font to use for the title.
    """
    qr_image = _qr(payload, box_size=_POSTER_BOX_SIZE).make_image(fill_color="black", back_color="white")
    qr_rgb = qr_image.get_image().convert("RGB")
    width, height = qr_rgb.size
    font_size = max(24, width // 16)
    font = _title_font(title, font_size, font_path) if title.strip() else None
    text_height = 0
    if font is not None:
        left, _top, right, bottom = font.getbbox(title)
        # Shrink long names to fit the poster width.
        while right - left > width * 0.9 and font_size > 12:
            font_size = int(font_size * 0.9)
            font = _title_font(title, font_size, font_path)
            assert font is not None
            left, _top, right, bottom = font.getbbox(title)
        # Below the QR's quiet zone (never inside it), plus a margin under the text.
        text_height = bottom + font_size
    poster = Image.new("RGB", (width, height + text_height), "white")
    poster.paste(qr_rgb, (0, 0))
    if font is not None:
        text_width = font.getbbox(title)[2] - font.getbbox(title)[0]
        ImageDraw.Draw(poster).text(((width - text_width) // 2, height), title, fill="black", font=font)
    buffer = io.BytesIO()
    poster.save(buffer, format="PNG")
    return buffer.getvalue()
