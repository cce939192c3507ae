"""QR rendering: what the images decode to, error correction level M, caching."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
import qrcode
import qrcode.constants
import zxingcpp
from PIL import Image, ImageDraw

from codes import render as render_module
from codes.payload import build_claims, issue_code
from codes.render import (
    BORDER,
    BOX_SIZE,
    MASK_PATTERN,
    qr_version,
    render,
    render_png,
    render_svg,
    render_venue_poster_png,
)
from core.signing import Ed25519Signer

SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def payload(signer: Ed25519Signer) -> str:
    claims = build_claims("health", issuer="cs", subject="Zk9vQmFyQmF", status="G", rule_version=12)
    return issue_code(signer, claims)


def _decode(image: Image.Image) -> zxingcpp.Barcode:
    results = zxingcpp.read_barcodes(image)
    assert len(results) == 1
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
    return results[0]


def _rasterize_svg(svg: bytes, scale: int = 8) -> Image.Image:
    """Draw qrcode's single-path SVG (``M x,y H x2 V y2 H x z`` squares) with Pillow."""
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    _, _, width, height = (float(v) for v in root.attrib["viewBox"].split())
    image = Image.new("L", (int(width * scale), int(height * scale)), 255)
    draw = ImageDraw.Draw(image)
    path = root.find(f"{SVG_NS}path")
    assert path is not None
    squares = re.findall(r"M([\d.]+),([\d.]+)H([\d.]+)V([\d.]+)H[\d.]+z", path.attrib["d"])
    assert squares
    for x0, y0, x1, y1 in squares:
        box = (float(x0) * scale, float(y0) * scale, float(x1) * scale - 1, float(y1) * scale - 1)
        draw.rectangle(box, fill=0)
    return image


def test_png_decodes_to_the_payload_at_level_m(payload: str) -> None:
    png = render_png(payload)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    barcode = _decode(Image.open(io.BytesIO(png)))
    assert barcode.text == payload
    assert barcode.ec_level == "M"


def test_svg_is_xml_with_a_path_and_decodes(payload: str) -> None:
    svg = render_svg(payload)
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag == f"{SVG_NS}svg"
    assert root.find(f"{SVG_NS}path") is not None
    barcode = _decode(_rasterize_svg(svg))
    assert barcode.text == payload
    assert barcode.ec_level == "M"


def test_png_has_the_pixels_qrcode_itself_draws_with_the_fixed_mask(payload: str) -> None:
    image = Image.open(io.BytesIO(render_png(payload)))
    reference = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=BOX_SIZE, border=BORDER, mask_pattern=MASK_PATTERN
    )
    reference.add_data(payload)
    drawn = reference.make_image(fill_color="black", back_color="white").get_image()
    assert (image.mode, image.size) == (drawn.mode, drawn.size)
    assert image.tobytes() == drawn.tobytes()


@pytest.mark.parametrize("length", [40, 97, 150, 211, 260, 320])
def test_every_payload_size_decodes_with_the_fixed_mask(signer: Ed25519Signer, length: int) -> None:
    # Versions 4 to 13: the fixed mask must never make a code a scanner cannot read.
    code = issue_code(signer, build_claims("health", issuer="cs", subject="Zk9vQmFyQmF", status="G"))
    text = (code * 3)[:length]
    png = _decode(Image.open(io.BytesIO(render_png(text))))
    assert png.text == text
    assert png.ec_level == "M"
    assert _decode(_rasterize_svg(render_svg(text))).text == text


def test_a_full_budget_payload_fits_version_13() -> None:
    longest = "OC1:" + "eyJhbGciOiJFZERTQSJ9-_" * 14 + "x" * 8
    assert len(longest) == 320
    assert qr_version(longest) <= 13
    assert _decode(Image.open(io.BytesIO(render_png(longest)))).text == longest


def test_cache_returns_the_same_bytes(payload: str) -> None:
    render_module.clear_cache()
    first = render_png(payload)
    assert render_png(payload) is first
    assert render_svg(payload) is not first  # the format is part of the key
    render_module.clear_cache()
    again = render_png(payload)
    assert again == first
    assert again is not first


def test_cache_is_bounded() -> None:
    render_module.clear_cache()
    cache = render_module._LruCache(2)
    cache.put(("a", "png"), b"1")
    cache.put(("b", "png"), b"2")
    assert cache.get(("a", "png")) == b"1"  # a is now the most recent
    cache.put(("c", "png"), b"3")
    assert cache.get(("b", "png")) is None
    assert cache.get(("a", "png")) == b"1"


async def test_async_render(payload: str) -> None:
    render_module.clear_cache()
    png = await render(payload, "png")
    assert png == render_png(payload)
    assert await render(payload, "png") is png  # a hit skips the thread
    svg = await render(payload, "svg")
    assert svg.startswith(b"<?xml")
    with pytest.raises(ValueError, match="unsupported"):
        await render(payload, "gif")  # type: ignore[arg-type]


def test_venue_poster(signer: Ed25519Signer) -> None:
    venue = issue_code(signer, build_claims("venue", issuer="cs", subject="venue-0042", status="A"))
    plain = Image.open(io.BytesIO(render_venue_poster_png(venue, "")))
    titled = Image.open(io.BytesIO(render_venue_poster_png(venue, "Central Library")))
    assert titled.height > plain.height  # room for the title
    assert titled.width == plain.width
    for poster in (plain, titled):
        assert _decode(poster).text == venue
    # A name the available fonts may not cover still gives a scannable poster.
    chinese = Image.open(io.BytesIO(render_venue_poster_png(venue, "市图书馆")))
    assert _decode(chinese).text == venue
