"""Report photos from phones: checked from their bytes, metadata stripped, resized, re-encoded.

A citizen attaches up to three photos to a report. At most DECODE_SLOTS photos are decoded at once in a
process (one can take ~240 MB and seconds of CPU); one that waits longer than DECODE_WAIT_S is 503.
What happens to each upload, in order:

1. Size: more than `max_bytes` is refused (413) before anything is decoded.
2. Type, from the bytes alone (magic numbers; a file name or a declared content type is never
   trusted): JPEG, PNG, WebP, and HEIC/HEIF from iPhones (through pillow-heif). Anything else -
   GIF, SVG, PDF, text, an HTML page named .jpg, truncated or corrupt data - is 415.
   Animated images (APNG, animated WebP) and multi-picture files (MPO JPEGs from Android
   phones, HEIC with several images) are accepted: the first frame, or the primary image, is
   kept and the rest dropped. GIF is refused: phones do not take GIF photos, and a GIF upload
   is a sticker or an animation, not evidence.
3. Pixels: the header's size is read before the pixels are decoded; more than `MAX_PIXELS`
   (after a JPEG's DCT-domain reduction, see below) is 413, so a small file claiming a huge
   picture (a decompression bomb) costs nothing. Then the image is decoded fully, inside the
   same guard, so a truncated file is 415 rather than a half-grey photo.
4. The EXIF GPS position is read (`Photo.exif_lon/exif_lat`, WGS-84) when it is present and
   sane, so the workflow can compare it with where the citizen says the problem is; a broken
   GPS tag only means no position, it never refuses the photo.
5. The EXIF orientation is applied, so the stored photo is upright without its metadata.
6. The longer side is brought down to `max_side` (LANCZOS); a large JPEG is first decoded at
   1/2, 1/4 or 1/8 scale by libjpeg itself, which is faster and needs less memory.
7. Colours: an embedded ICC profile (an iPhone's Display P3, a CMYK press profile) is converted
   to sRGB and then dropped; without a usable profile the pixels are taken as sRGB.
8. Re-encoded WITHOUT any metadata - no EXIF, GPS, XMP, comments, ICC or device data. Phone
   photos carry the exact place and time they were taken, the phone's make and model and
   sometimes its owner's name; a report's photos are shown to zone chiefs and on the report's
   public tracking page, so none of that may travel with them. JPEG and HEIC become JPEG
   (quality 85, progressive, RGB; transparency is flattened onto white), WebP stays WebP, PNG
   stays PNG - except a PNG without transparency whose PNG encoding is over `PNG_AS_JPEG_BYTES`:
   that is a photo saved as PNG (or a screenshot), and it is stored as JPEG, several times smaller.
"""
from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from typing import Any

import pillow_heif
from PIL import ExifTags, Image, ImageCms, ImageOps

from gis.errors import ZonechiefError

MAX_SIDE = 2048  # pixels: the longer side of a stored photo
# Decoded pixels at most: an iPhone's 48-MP mode (8064×6048, 49 MP) must pass; 50 MP of RGB is 150 MB while decoding.
MAX_PIXELS = 50_000_000
PNG_AS_JPEG_BYTES = 1_048_576  # an opaque PNG whose re-encoding is larger than this is stored as JPEG
JPEG_QUALITY = 85
WEBP_QUALITY = 85
# Photos decoded at once in a process: each may take ~200 MB (MAX_PIXELS of RGBA, then its resized copy), and a
# small flat PNG can claim 50 MP, so without a bound a burst of uploads is a burst of gigabytes. Others wait.
DECODE_SLOTS = 2
DECODE_WAIT_S = 30.0
DECODES = threading.BoundedSemaphore(DECODE_SLOTS)
EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), for the great-circle distance

UNSUPPORTED = "不是支持的图片格式（JPEG、PNG、WebP、HEIC）/ not a supported image (JPEG, PNG, WebP, HEIC)"
BUSY = "现在处理照片的人太多，请稍后再提交 / too many photos are being processed; please send again shortly"

# ISO-BMFF major brands of HEIF still images and sequences (ISO/IEC 23008-12); AVIF ("avif") is not among them.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})

pillow_heif.register_heif_opener()  # once, at import: Image.open then knows the format "HEIF"


class PhotoError(ZonechiefError, ValueError):
    """A photo that cannot be accepted; `status` is 413 (too large), 415 (not a supported image) or 503 (busy)."""

    def __init__(self, message: str, status: int = 415):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Photo:
    """A photo as stored: re-encoded bytes without metadata, and what was read from the original."""

    data: bytes
    content_type: str  # image/jpeg | image/png | image/webp
    width: int
    height: int
    exif_lon: float | None = None  # the original's EXIF GPS position, WGS-84; None without one
    exif_lat: float | None = None


def sniff(data: bytes) -> str | None:
    """The Pillow format name ("JPEG", "PNG", "WEBP", "HEIF") that the bytes start like, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def process_photo(data: bytes, max_bytes: int, max_side: int = MAX_SIDE) -> Photo:
    """The photo to store from an upload's bytes; PhotoError when it cannot be accepted."""
    if len(data) > max_bytes:
        raise PhotoError(f"照片太大：{len(data)} 字节，上限 {max_bytes} 字节 / photo too large: {len(data)} bytes, the limit is {max_bytes}",
                         status=413)
    kind = sniff(data)
    if kind is None:
        raise PhotoError(UNSUPPORTED, status=415)
    if not DECODES.acquire(timeout=DECODE_WAIT_S):
        raise PhotoError(BUSY, status=503)
    try:
        return _process(data, kind, max_side)
    finally:
        DECODES.release()


def _process(data: bytes, kind: str, max_side: int) -> Photo:
    """Decode, check, turn, resize and re-encode (one of DECODE_SLOTS at a time)."""
    try:
        im = _decode(data, kind, max_side)
        lon, lat = exif_position(im)
        im = _working_mode(_upright(im))
    except PhotoError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own hard limit (2 × MAX_IMAGE_PIXELS), hit while reading the header
        raise PhotoError(_too_many_pixels(None), status=413) from exc
    except Exception as exc:  # a hostile or damaged file can make a decoder raise almost anything: all of it is "not an image"
        raise PhotoError(UNSUPPORTED, status=415) from exc
    im = _resize(im, max_side)
    im = _to_srgb(im)
    im.info = {}  # savers fall back to info for the comment, ICC and transparency: nothing of the original goes out
    out, content_type = _encode(im, kind)
    return Photo(data=out, content_type=content_type, width=im.width, height=im.height, exif_lon=lon, exif_lat=lat)


def exif_distance_m(photo: Photo, lon: float, lat: float) -> float | None:
    """Great-circle distance in metres from the photo's EXIF position to (lon, lat), WGS-84; None without a position.

    Haversine on the mean-radius sphere: within 0.5 % of the ellipsoidal distance, plenty to tell
    "taken here" from "taken across town".
    """
    if photo.exif_lon is None or photo.exif_lat is None:
        return None
    p1, p2 = math.radians(photo.exif_lat), math.radians(lat)
    dp, dl = p2 - p1, math.radians(lon - photo.exif_lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def exif_position(im: Image.Image) -> tuple[float | None, float | None]:
    """(lon, lat) in WGS-84 degrees from an image's EXIF GPS tags, or (None, None) when absent, broken or not sane."""
    try:
        gps = im.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "N", "S", 90.0)
        lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "E", "W", 180.0)
    except Exception:  # metadata never refuses a photo: a tag Pillow cannot parse is no position
        return None, None
    if lat is None or lon is None or (lat == 0 and lon == 0):  # 0,0 is what some phones write without a fix
        return None, None
    return lon, lat


def _degrees(value: Any, ref: Any, pos: str, neg: str, limit: float) -> float | None:
    """Signed degrees from EXIF (degrees, minutes, seconds) rationals and an N/S or E/W ref; None unless sane."""
    if isinstance(ref, bytes):
        ref = ref.decode("latin-1")
    ref = str(ref).strip("\x00 ").upper() if ref is not None else ""
    if ref not in (pos, neg) or value is None:  # without its ref a position's sign is a guess: none rather than a wrong one
        return None
    parts = [float(v) for v in value] if isinstance(value, (tuple, list)) else [float(value)]
    if not 1 <= len(parts) <= 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
        return None
    deg = sum(p / 60**i for i, p in enumerate(parts))
    if deg > limit:
        return None
    return -deg if ref == neg else deg


def _too_many_pixels(size: tuple[int, int] | None) -> str:
    got = f"（{size[0]}×{size[1]}）" if size else ""
    got_en = f" ({size[0]}×{size[1]})" if size else ""
    mp = MAX_PIXELS // 1_000_000
    return f"照片像素太多{got}，上限 {mp} 百万像素 / photo has too many pixels{got_en}; the limit is {mp} megapixels"


def _target(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size with the longer side at most max_side, aspect kept (each side at least 1)."""
    w, h = size
    scale = max_side / max(w, h)
    if scale >= 1:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))


def _decode(data: bytes, kind: str, max_side: int) -> Image.Image:
    """Open as exactly `kind`, refuse too many pixels from the header, then decode everything (first frame)."""
    im = Image.open(io.BytesIO(data), formats=[kind])
    if kind == "JPEG":
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale while staying at least the target size: it never upsamples later.
        # Orientation is applied after, and the target box is square, so the unrotated size gives the right scale.
        im.draft(None, _target(im.size, max_side))
    if im.width * im.height > MAX_PIXELS:
        raise PhotoError(_too_many_pixels(im.size), status=413)
    im.load()
    return im


def _upright(im: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; as it is when that tag is broken.

    HEIF comes already turned (libheif applies its rotation boxes, pillow-heif resets the tag to 1).
    """
    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block must not refuse the photo
        return im


def _working_mode(im: Image.Image) -> Image.Image:
    """RGB, RGBA or CMYK (kept for its ICC profile): palette, grey, 16-bit and odd modes converted before resizing.

    RGBA whose alpha is opaque everywhere (many screenshots) becomes RGB, so it counts as a photo without transparency.
    """
    if im.mode == "RGBA" and im.getchannel("A").getextrema() == (255, 255):
        return im.convert("RGB")
    if im.mode in ("RGB", "RGBA", "CMYK"):
        return im
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):  # 16-bit grey PNG: scaled to 8 bits, not clipped to white
        im = im.convert("I").point(lambda v: v / 256).convert("L")
        im.info.pop("transparency", None)  # a 16-bit transparent grey value means nothing in 8 bits
    alpha = im.mode in ("LA", "La", "PA", "RGBa") or "transparency" in im.info
    if im.mode == "La":
        im = im.convert("LA")
    out = im.convert("RGBA" if alpha else "RGB")
    out.info.pop("icc_profile", None)  # a grey or palette profile does not describe the RGB pixels
    return _working_mode(out) if alpha else out


def _resize(im: Image.Image, max_side: int) -> Image.Image:
    size = _target(im.size, max_side)
    if size == im.size:
        return im
    return im.resize(size, Image.Resampling.LANCZOS)  # a JPEG is past its DCT reduction here: at most 2x left to shrink


def _to_srgb(im: Image.Image) -> Image.Image:
    """RGB/RGBA pixels in sRGB: through the embedded ICC profile when there is a usable one."""
    out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
    icc = im.info.get("icc_profile")
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            # Most Android photos say "sRGB IEC61966-2.1": already sRGB, and the transform costs ~0.1 s for 3 MP.
            if im.mode == "CMYK" or not ImageCms.getProfileDescription(profile).strip().lower().startswith("srgb"):
                converted = ImageCms.profileToProfile(im, profile, ImageCms.createProfile("sRGB"), outputMode=out_mode)
                if converted is not None:
                    return converted
        except Exception:  # a damaged or unusual profile: the pixels are taken as they are
            pass
    return im if im.mode == out_mode else im.convert(out_mode)


def _flatten(im: Image.Image) -> Image.Image:
    """RGB: transparency composed onto white (JPEG has no alpha)."""
    if im.mode != "RGBA":
        return im
    white = Image.new("RGB", im.size, (255, 255, 255))
    white.paste(im, mask=im.getchannel("A"))
    return white


def _save(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def _jpeg(im: Image.Image) -> bytes:
    return _save(_flatten(im), "JPEG", quality=JPEG_QUALITY, progressive=True)  # progressive: a phone shows the whole photo early


def _encode(im: Image.Image, kind: str) -> tuple[bytes, str]:
    """The stored bytes and their content type, with no metadata (see the module docstring for the choices)."""
    if kind == "WEBP":
        return _save(im, "WEBP", quality=WEBP_QUALITY, method=4), "image/webp"
    if kind == "PNG":
        png = _save(im, "PNG", compress_level=6)
        if im.mode == "RGBA" or len(png) <= PNG_AS_JPEG_BYTES:
            return png, "image/png"
    return _jpeg(im), "image/jpeg"
