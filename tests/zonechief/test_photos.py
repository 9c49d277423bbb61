"""zonechief.photos: real images built with Pillow and pillow-heif go through process_photo and are reopened.

Nothing is mocked: every photo is encoded by the real codecs, and every check reopens the stored bytes.
"""
from __future__ import annotations

import io
import math
import struct
import time
import zlib

import numpy as np
import pillow_heif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo
from PIL.TiffImagePlugin import IFDRational

from zonechief.photos import MAX_SIDE, UNSUPPORTED, Photo, PhotoError, exif_distance_m, process_photo, sniff

BIG = 50 << 20  # max_bytes that never gets in the way
SECRETS = (b"Exif", b"GPS", b"SecretPhone", b"owner-name", b"xmp-secret", b"a-comment", b"http://ns.adobe.com/xap")


def dms(deg: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees as EXIF writes them: whole degrees, whole minutes, seconds to 1/10000."""
    d = int(deg)
    m = int((deg - d) * 60)
    s = (deg - d - m / 60) * 3600
    return IFDRational(d, 1), IFDRational(m, 1), IFDRational(round(s * 10_000), 10_000)


def exif_with(lon: float | None = None, lat: float | None = None, orientation: int | None = None, gps: dict | None = None) -> Image.Exif:
    """An EXIF block like a phone's: make, owner, optional orientation and GPS position (or raw GPS tags)."""
    ex = Image.Exif()
    ex[0x010F] = "SecretPhone"  # Make
    ex[0xA430] = "owner-name"  # CameraOwnerName
    if orientation is not None:
        ex[0x0112] = orientation
    g = ex.get_ifd(0x8825)
    if lat is not None and lon is not None:
        g.update({1: "N" if lat >= 0 else "S", 2: dms(abs(lat)), 3: "E" if lon >= 0 else "W", 4: dms(abs(lon))})
    if gps:
        g.update(gps)
    return ex


def noise(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
    return Image.fromarray(arr.squeeze(), mode if mode != "L" else None).convert(mode)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def reopen(photo: Photo) -> Image.Image:
    im = Image.open(io.BytesIO(photo.data))
    im.load()
    return im


def assert_clean(photo: Photo) -> None:
    """No metadata at all in the stored bytes: Pillow finds none, and the marker strings are not in the bytes."""
    im = reopen(photo)
    assert len(im.getexif()) == 0
    for key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "icc_profile", "Comment", "Author"):
        assert key not in im.info, key
    for s in SECRETS:
        assert s not in photo.data, s


def close(a, b, tol=40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


# --- EXIF GPS read, everything stripped ---

@settings(max_examples=25, deadline=None)
@given(lat=st.floats(22.5, 23.3), lon=st.floats(113.5, 114.4))
def test_jpeg_gps_read_and_stripped(lat, lon):
    data = encode(noise(48, 32, seed=1), "JPEG", exif=exif_with(lon, lat).tobytes(), comment=b"a-comment")
    assert b"GPS" in data or b"SecretPhone" in data  # the original really carries them
    p = process_photo(data, BIG)
    assert p.content_type == "image/jpeg" and (p.width, p.height) == (48, 32)
    assert p.exif_lat == pytest.approx(lat, abs=1e-6) and p.exif_lon == pytest.approx(lon, abs=1e-6)
    assert_clean(p)


@pytest.mark.parametrize("lon,lat", [(-151.2093, -33.8688), (-0.1276, 51.5072), (151.2093, -33.8688)])
def test_gps_refs_south_west(lon, lat):
    p = process_photo(encode(noise(16, 16), "JPEG", exif=exif_with(lon, lat).tobytes()), BIG)
    assert (p.exif_lon, p.exif_lat) == (pytest.approx(lon, abs=1e-6), pytest.approx(lat, abs=1e-6))


@pytest.mark.parametrize("gps", [
    {1: "N", 2: (IFDRational(23, 0), IFDRational(1, 1), IFDRational(0, 1)), 3: "E", 4: dms(113.7)},  # zero denominator: NaN
    {2: dms(23.0), 3: "E", 4: dms(113.7)},  # no latitude ref
    {1: "X", 2: dms(23.0), 3: "E", 4: dms(113.7)},  # a ref that is no direction
    {1: "N", 2: dms(95.0), 3: "E", 4: dms(113.7)},  # beyond the pole
    {1: "N", 2: dms(23.0), 3: "E", 4: dms(181.0)},  # beyond the antimeridian
    {1: "N", 2: dms(0.0), 3: "E", 4: dms(0.0)},  # 0,0: a phone without a fix
    {1: "N", 2: (IFDRational(23, 1),) * 5, 3: "E", 4: dms(113.7)},  # five numbers where three belong
    {1: "N", 3: "E", 4: dms(113.7)},  # latitude missing
])
def test_broken_gps_is_no_position_not_a_refusal(gps):
    p = process_photo(encode(noise(16, 16), "JPEG", exif=exif_with(gps=gps).tobytes()), BIG)
    assert (p.exif_lon, p.exif_lat) == (None, None)
    assert_clean(p)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_block_still_accepted():
    # An APP1 "Exif" segment of garbage, as some editors leave behind.
    p = process_photo(encode(noise(16, 16), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\x01" * 40), BIG)
    assert (p.width, p.height, p.exif_lon) == (16, 16, None)
    assert_clean(p)


def test_no_exif_no_position():
    p = process_photo(encode(noise(16, 16), "JPEG"), BIG)
    assert (p.exif_lon, p.exif_lat) == (None, None)
    assert exif_distance_m(p, 113.75, 23.0) is None


# --- orientation ---

@pytest.mark.parametrize("orientation,red_at", [(1, "tl"), (3, "br"), (6, "tr"), (8, "bl")])
def test_orientation_applied(orientation, red_at):
    # Stored 200x100, blue with a red top-left block; the tag says how a viewer must turn it.
    im = Image.new("RGB", (200, 100), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 50, 50))
    p = process_photo(encode(im, "JPEG", quality=95, exif=exif_with(orientation=orientation).tobytes()), BIG)
    out = reopen(p).convert("RGB")
    turned = orientation in (6, 8)
    assert (p.width, p.height) == ((100, 200) if turned else (200, 100)) == out.size
    w, h = out.size
    corners = {"tl": (5, 5), "tr": (w - 6, 5), "bl": (5, h - 6), "br": (w - 6, h - 6)}
    for name, xy in corners.items():
        assert close(out.getpixel(xy), (255, 0, 0) if name == red_at else (0, 0, 255)), (name, out.getpixel(xy))
    assert_clean(p)


# --- size ---

@pytest.mark.parametrize("size,max_side,expect", [
    ((4000, 3000), MAX_SIDE, (2048, 1536)),
    ((3000, 4000), MAX_SIDE, (1536, 2048)),
    ((1000, 800), MAX_SIDE, (1000, 800)),
    ((1000, 800), 200, (200, 160)),  # through libjpeg's 1/4-scale decode, then LANCZOS
    ((3000, 10), 1000, (1000, 3)),
])
def test_resize(size, max_side, expect):
    im = Image.new("RGB", size, (30, 160, 90))
    p = process_photo(encode(im, "JPEG"), BIG, max_side=max_side)
    assert (p.width, p.height) == expect == reopen(p).size
    assert close(reopen(p).convert("RGB").getpixel((expect[0] // 2, expect[1] // 2)), (30, 160, 90), tol=6)


def test_resize_keeps_content():
    # Left half black, right half white: still so after the 1/4-scale decode and LANCZOS.
    im = Image.new("L", (1600, 1200), 0)
    im.paste(255, (800, 0, 1600, 1200))
    p = process_photo(encode(im, "JPEG", quality=95), BIG, max_side=400)
    out = reopen(p)
    assert out.mode == "RGB" and out.size == (400, 300)
    assert close(out.getpixel((100, 150)), (0, 0, 0), 8) and close(out.getpixel((300, 150)), (255, 255, 255), 8)


def test_big_jpeg_decoded_at_reduced_scale_passes_the_pixel_limit():
    # 63 MP is over MAX_PIXELS, but libjpeg decodes it at 1/4 scale (2250x1750): accepted, and fast.
    im = Image.new("L", (9000, 7000), 60)
    im.paste(200, (4500, 0, 9000, 7000))
    data = encode(im, "JPEG", quality=50)
    del im
    p = process_photo(data, BIG)
    out = reopen(p)
    assert (p.width, p.height) == (2048, 1593) == out.size
    assert close(out.getpixel((500, 800)), (60, 60, 60), 6) and close(out.getpixel((1500, 800)), (200, 200, 200), 6)


# --- formats ---

def test_png_with_alpha_stays_png_with_alpha():
    im = Image.new("RGBA", (3000, 1500), (200, 30, 30, 255))
    im.paste((0, 0, 0, 0), (0, 0, 1500, 1500))
    info = PngInfo()
    info.add_text("Comment", "a-comment")
    info.add_text("Author", "owner-name")
    p = process_photo(encode(im, "PNG", pnginfo=info, exif=exif_with(113.7, 23.0).tobytes()), BIG)
    out = reopen(p)
    assert (p.content_type, out.format, out.mode, out.size) == ("image/png", "PNG", "RGBA", (2048, 1024))
    assert out.getpixel((100, 500))[3] == 0 and out.getpixel((2000, 500)) == (200, 30, 30, 255)
    assert (p.exif_lon, p.exif_lat) == (pytest.approx(113.7, abs=1e-6), pytest.approx(23.0, abs=1e-6))
    assert_clean(p)


def test_palette_png_with_transparency_keeps_it():
    im = Image.new("P", (40, 20), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (20, 0, 40, 20))
    p = process_photo(encode(im, "PNG", transparency=1), BIG)
    out = reopen(p)
    assert (out.format, out.mode) == ("PNG", "RGBA")
    assert out.getpixel((5, 5)) == (255, 0, 0, 255) and out.getpixel((30, 5))[3] == 0


def test_opaque_png_small_stays_png_big_becomes_jpeg():
    flat = process_photo(encode(Image.new("RGBA", (800, 600), (10, 20, 30, 255)), "PNG"), BIG)
    assert (flat.content_type, reopen(flat).format, reopen(flat).mode) == ("image/png", "PNG", "RGB")  # opaque alpha dropped
    photo_like = process_photo(encode(noise(1200, 900), "PNG"), BIG)
    assert (photo_like.content_type, reopen(photo_like).format, photo_like.width) == ("image/jpeg", "JPEG", 1200)


def test_webp_stays_webp():
    im = noise(2400, 1200, seed=3)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">xmp-secret</x:xmpmeta>'
    p = process_photo(encode(im, "WEBP", exif=exif_with(113.9, 22.8).tobytes(), xmp=xmp), BIG)
    out = reopen(p)
    assert (p.content_type, out.format, out.size) == ("image/webp", "WEBP", (2048, 1024))
    assert (p.exif_lon, p.exif_lat) == (pytest.approx(113.9, abs=1e-6), pytest.approx(22.8, abs=1e-6))
    assert_clean(p)


def test_webp_with_alpha():
    im = Image.new("RGBA", (64, 64), (0, 200, 0, 255))
    im.paste((0, 0, 0, 0), (0, 0, 32, 64))
    out = reopen(process_photo(encode(im, "WEBP", lossless=True), BIG))
    assert out.mode == "RGBA" and out.getpixel((5, 5))[3] == 0 and close(out.getpixel((50, 5)), (0, 200, 0, 255), 8)


def test_heic_becomes_jpeg_with_gps_read():
    pillow_heif.register_heif_opener()
    im = Image.new("RGB", (300, 200), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 100, 100))
    data = encode(im, "HEIF", quality=90, exif=exif_with(113.75, 23.02, orientation=6).tobytes())
    assert sniff(data) == "HEIF"
    p = process_photo(data, BIG)
    out = reopen(p)
    assert (p.content_type, out.format, out.mode) == ("image/jpeg", "JPEG", "RGB")
    assert (p.exif_lon, p.exif_lat) == (pytest.approx(113.75, abs=1e-6), pytest.approx(23.02, abs=1e-6))
    # pillow-heif stores orientation 6 as a rotation that libheif applies; turned once, not twice: red top-right.
    assert out.size == (200, 300) and close(out.getpixel((190, 10)), (255, 0, 0)) and close(out.getpixel((10, 10)), (0, 0, 255))
    assert_clean(p)


def test_heic_with_alpha_flattened_onto_white():
    pillow_heif.register_heif_opener()
    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (32, 0, 64, 64))
    out = reopen(process_photo(encode(im, "HEIF", quality=95), BIG))
    assert out.mode == "RGB" and close(out.getpixel((5, 5)), (255, 255, 255)) and close(out.getpixel((50, 5)), (0, 0, 255))


def test_cmyk_and_grey_jpeg_become_rgb():
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red ink
    out = reopen(process_photo(encode(cmyk, "JPEG", quality=95), BIG))
    assert out.mode == "RGB" and close(out.getpixel((16, 16)), (255, 0, 0))
    grey = reopen(process_photo(encode(Image.new("L", (32, 32), 128), "JPEG"), BIG))
    assert grey.mode == "RGB" and close(grey.getpixel((16, 16)), (128, 128, 128), 3)


def test_sixteen_bit_grey_png_scaled_not_clipped():
    im = Image.fromarray(np.full((16, 16), 0x8000, dtype=np.uint16))  # mid grey in 16 bits
    out = reopen(process_photo(encode(im, "PNG"), BIG))
    assert out.mode == "RGB" and close(out.getpixel((8, 8)), (128, 128, 128), 1)


def test_multi_picture_jpeg_first_picture_kept():
    # MPO: what many Android phones and cameras write (a main picture plus a depth or preview one).
    main, second = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 255))
    data = encode(main, "MPO", save_all=True, append_images=[second], exif=exif_with(113.8, 23.05).tobytes())
    assert sniff(data) == "JPEG" and Image.open(io.BytesIO(data)).format == "MPO"
    p = process_photo(data, BIG)
    out = reopen(p)
    assert (p.content_type, out.format, getattr(out, "n_frames", 1)) == ("image/jpeg", "JPEG", 1)
    assert close(out.getpixel((32, 24)), (255, 0, 0)) and p.exif_lat == pytest.approx(23.05, abs=1e-6)
    assert_clean(p)


def linear_rgb_icc() -> bytes:
    """A minimal ICC v2 RGB profile: sRGB primaries, gamma 1.0 (linear light). Pillow cannot make one, so built here."""
    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    curv = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0100) + b"\0\0"  # one entry: gamma 1.0 (u8Fixed8)
    desc = b"desc\0\0\0\0" + struct.pack(">I", 7) + b"linear\0" + b"\0" * 4 + b"\0" * 4 + b"\0" * 3 + b"\0" * 67
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
            (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)), (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
            (b"rTRC", curv), (b"gTRC", curv), (b"bTRC", curv)]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp"
              + b"\0" * 24 + struct.pack(">I", 0) + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def test_icc_profile_converted_to_srgb_then_dropped():
    # Grey 128 in linear light is about 188 in sRGB: the stored pixels show the profile was applied.
    icc = linear_rgb_icc()
    ImageCms.ImageCmsProfile(io.BytesIO(icc))  # a profile LittleCMS accepts
    p = process_photo(encode(Image.new("RGB", (32, 32), (128, 128, 128)), "JPEG", quality=95, icc_profile=icc), BIG)
    out = reopen(p)
    assert "icc_profile" not in out.info and close(out.getpixel((16, 16)), (188, 188, 188), 3)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    same = reopen(process_photo(encode(Image.new("RGB", (32, 32), (40, 120, 220)), "JPEG", quality=95, icc_profile=srgb), BIG))
    assert "icc_profile" not in same.info and close(same.getpixel((16, 16)), (40, 120, 220), 4)


def test_broken_icc_profile_ignored():
    p = process_photo(encode(Image.new("RGB", (32, 32), (40, 120, 220)), "JPEG", quality=95, icc_profile=b"not a profile" * 20), BIG)
    assert close(reopen(p).getpixel((16, 16)), (40, 120, 220), 4)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_first_frame_kept(fmt):
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    out = reopen(process_photo(data, BIG))
    assert getattr(out, "n_frames", 1) == 1 and close(out.convert("RGB").getpixel((20, 20)), (255, 0, 0))


# --- refused ---

def real_jpeg() -> bytes:
    return encode(noise(400, 300, seed=7), "JPEG", quality=90)


def tiny_gif() -> bytes:
    return encode(Image.new("P", (8, 8)), "GIF")


def png_claiming(w: int, h: int) -> bytes:
    """A valid PNG header for a w x h RGB image, followed by a few bytes of IDAT: a decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


NOT_IMAGES = {
    "text": "市民反映：路边有垃圾 / rubbish by the road\n".encode(),
    "html named .jpg": b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
    "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    "gif (refused: not a phone photo format)": tiny_gif(),
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
    "random": np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    "empty": b"",
    "jpeg magic then junk": b"\xff\xd8\xff\xe0" + b"\x00" * 200,
    "truncated jpeg": real_jpeg()[: len(real_jpeg()) // 2],
    "truncated png": encode(noise(200, 200), "PNG")[:3000],
    "truncated webp": encode(noise(200, 200), "WEBP")[:2000],
    "avif brand": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00mif1avifmiaf" + b"\x00" * 64,
    "heic brand, no image": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
    "mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 64,
}


@pytest.mark.parametrize("name", NOT_IMAGES)
def test_not_an_image_is_415(name):
    with pytest.raises(PhotoError) as err:
        process_photo(NOT_IMAGES[name], BIG)
    assert err.value.status == 415
    assert str(err.value) == UNSUPPORTED and "不是支持的图片格式" in UNSUPPORTED and "not a supported image" in UNSUPPORTED


def test_truncated_heic_is_415():
    pillow_heif.register_heif_opener()
    data = encode(noise(256, 256), "HEIF", quality=80)
    with pytest.raises(PhotoError) as err:
        process_photo(data[: len(data) // 2], BIG)
    assert err.value.status == 415


@settings(max_examples=60, deadline=None)
@given(magic=st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x01\x00\x00WEBPVP8 ", b"\x00\x00\x00\x18ftypheic"]),
       tail=st.binary(max_size=400))
def test_fuzz_only_photo_or_photoerror(magic, tail):
    try:
        p = process_photo(magic + tail, BIG)
    except PhotoError as err:
        assert err.status in (413, 415)
    else:
        assert p.width > 0 and p.height > 0


def test_over_max_bytes_is_413_before_decoding():
    data = real_jpeg()
    assert process_photo(data, len(data)).width == 400  # exactly the limit is fine
    with pytest.raises(PhotoError) as err:
        process_photo(data, len(data) - 1)
    assert err.value.status == 413 and "too large" in str(err.value)
    with pytest.raises(PhotoError) as err:  # not even looked at: garbage over the limit is 413, not 415
        process_photo(b"x" * 2000, 1024)
    assert err.value.status == 413


@pytest.mark.parametrize("w,h", [(60000, 60000), (8000, 8000), (50_000_001, 1)])
def test_pixel_bomb_is_413_without_decoding(w, h):
    data = png_claiming(w, h)
    assert len(data) < 200
    t0 = time.perf_counter()
    with pytest.raises(PhotoError) as err:
        process_photo(data, BIG)
    assert err.value.status == 413 and "megapixels" in str(err.value)
    assert time.perf_counter() - t0 < 0.5  # 8000x8000 RGB would be 192 MB to allocate and fill


def test_just_under_the_pixel_limit_is_decoded_not_refused():
    # 7000x7000 = 49 MP passes the pixel check; its tiny IDAT then fails the decode: 415, proving the check let it through.
    with pytest.raises(PhotoError) as err:
        process_photo(png_claiming(7000, 7000), BIG)
    assert err.value.status == 415


# --- distance ---

def test_exif_distance_m():
    p = Photo(b"", "image/jpeg", 1, 1, exif_lon=113.75, exif_lat=23.0)
    assert exif_distance_m(p, 113.75, 23.01) == pytest.approx(1111.95, abs=1.0)  # 0.01 deg of latitude
    assert exif_distance_m(p, 113.76, 23.0) == pytest.approx(1111.95 * math.cos(math.radians(23.0)), abs=1.0)
    assert exif_distance_m(p, 113.75, 23.0) == 0.0
    assert exif_distance_m(Photo(b"", "image/jpeg", 1, 1), 113.75, 23.0) is None


def test_exif_distance_from_a_real_photo():
    p = process_photo(encode(noise(16, 16), "JPEG", exif=exif_with(113.75, 23.0).tobytes()), BIG)
    assert exif_distance_m(p, 113.75, 23.01) == pytest.approx(1111.95, abs=1.0)
