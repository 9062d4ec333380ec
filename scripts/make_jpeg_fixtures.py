#!/usr/bin/env python3
"""Writes the decoding fixtures in tests/fixtures/jpeg/: small encoded images and, beside each one,
what `cv2.imread(path)` (IMREAD_COLOR) returns for it, flipped BGR->RGB and stored as an 8-bit RGB
PNG (`<name>.opencv.png`). `fixtures.json` lists every case.

Command (from the repository root; opencv-python-headless 4.7.0.68 bundles libjpeg-turbo 2.1.3,
libwebp and libpng; Pillow only writes the CMYK JPEG and the PNG files):

    pip install --target /tmp/pycv opencv-python-headless==4.7.0.68 numpy==1.26.4 pillow==13.0.0
    PYTHONPATH=/tmp/pycv python3 scripts/make_jpeg_fixtures.py tests/fixtures/jpeg

The YCCK case is encoded with the system libturbojpeg (`libturbojpeg.so.0`, Debian's
libturbojpeg0) through ctypes: neither OpenCV nor Pillow writes YCCK. It is skipped with a message
when that library is missing.

Image content is deterministic (fixed seed): colour gradients, hard-edged shapes and noise, so that
chroma subsampling and upsampling change the decoded values.
"""

import ctypes
import ctypes.util
import json
import os
import struct
import sys

import cv2
import numpy as np
from PIL import Image

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/jpeg"
CASES = []


def content(w, h, seed):
    """An RGB uint8 image: gradients + shapes with sharp edges + noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx = x / max(w - 1, 1)
    fy = y / max(h - 1, 1)
    r = 255 * fx
    g = 255 * fy
    b = 127 + 120 * np.sin(6.0 * (fx + fy))
    img = np.stack([r, g, b], axis=-1)
    # A saturated rectangle and a disc: strong chroma edges.
    img[(x > w * 0.2) & (x < w * 0.55) & (y > h * 0.25) & (y < h * 0.7)] = (230, 20, 40)
    disc = (x - w * 0.7) ** 2 + (y - h * 0.4) ** 2 < (min(w, h) * 0.22) ** 2
    img[disc] = (20, 60, 240)
    img[(x.astype(int) % 7 == 0) & (y > h * 0.75)] = (250, 250, 30)
    img += rng.normal(0, 14, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def opencv_decode(path):
    bgr = cv2.imread(path)
    return None if bgr is None else bgr[:, :, ::-1]


def save_png(rgb, path):
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(path, optimize=True)


def add(name, data, what, expect_error=None):
    """Writes `name`, decodes it with OpenCV and writes the decode beside it."""
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    rgb = opencv_decode(path)
    case = {"file": name, "what": what}
    if rgb is None:
        if expect_error is None:
            raise SystemExit(f"OpenCV did not decode {name}")
        case["opencv"] = None
        case["error"] = expect_error
    else:
        if expect_error is not None:
            raise SystemExit(f"OpenCV decoded {name}, expected it to fail")
        ref = name.rsplit(".", 1)[0] + ".opencv.png"
        assert all(c.get("opencv") != ref for c in CASES), f"{ref} written twice"
        save_png(rgb, os.path.join(OUT, ref))
        case["opencv"] = ref
        case["size"] = [int(rgb.shape[1]), int(rgb.shape[0])]
    CASES.append(case)


def encode(ext, bgr, params):
    ok, buf = cv2.imencode(ext, bgr, params)
    assert ok, ext
    return buf.tobytes()


def jpeg(rgb, quality=90, sampling=0x221111, extra=()):
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    return encode(".jpg", rgb[:, :, ::-1].copy(), params + list(extra))


# --- EXIF: an APP1 segment with one IFD0, inserted right after SOI -------------------------------


def tiff_ifd(entries, big_endian=False):
    e = ">" if big_endian else "<"
    out = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    out += struct.pack(e + "H", len(entries))
    for tag, typ, count, value in entries:
        val = struct.pack(e + "HH", value, 0) if typ == 3 else struct.pack(e + "I", value)
        out += struct.pack(e + "HHI", tag, typ, count) + val
    return out + struct.pack(e + "I", 0)


def app1(payload):
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_segments(jpg, segments):
    assert jpg[:2] == b"\xff\xd8"
    return jpg[:2] + b"".join(segments) + jpg[2:]


ORIENTATION, SHORT, LONG, ASCII, DESCRIPTION = 0x0112, 3, 4, 2, 0x010E


def exif(orientation, big_endian=False, typ=SHORT):
    return app1(b"Exif\0\0" + tiff_ifd([(ORIENTATION, typ, 1, orientation)], big_endian))


# --- YCCK through the system libturbojpeg (TurboJPEG 2.x API) -----------------------------------


def ycck_jpeg(rgb):
    name = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
    try:
        tj = ctypes.CDLL(name)
    except OSError:
        return None
    h, w, _ = rgb.shape
    # CMYK from RGB with K = 255 - max: a plain conversion, the content only needs to be varied.
    k = 255 - rgb.max(axis=2)
    cmyk = np.stack([255 - rgb[:, :, 0], 255 - rgb[:, :, 1], 255 - rgb[:, :, 2], k], axis=-1)
    cmyk = np.ascontiguousarray(cmyk.astype(np.uint8))
    tj.tjInitCompress.restype = ctypes.c_void_p
    handle = ctypes.c_void_p(tj.tjInitCompress())
    out = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_ulong(0)
    TJPF_CMYK, TJSAMP_420 = 11, 2
    rc = tj.tjCompress2(handle, cmyk.ctypes.data_as(ctypes.c_void_p), w, 0, h, TJPF_CMYK,
                        ctypes.byref(out), ctypes.byref(size), TJSAMP_420, 90, 0)
    assert rc == 0, "tjCompress2 failed"
    data = ctypes.string_at(out, size.value)
    tj.tjFree(out)
    tj.tjDestroy(handle)
    return data


def main():
    os.makedirs(OUT, exist_ok=True)
    base = content(64, 48, 1)
    base_jpg = jpeg(base, 90, 0x221111)
    add("q90_420.jpg", base_jpg, "4:2:0, quality 90")
    add("q60_420.jpg", jpeg(base, 60, 0x221111), "4:2:0, quality 60")
    add("q90_422.jpg", jpeg(base, 90, 0x211111), "4:2:2")
    add("q90_444.jpg", jpeg(base, 90, 0x111111), "4:4:4")
    add("q90_440.jpg", jpeg(base, 90, 0x121111), "4:4:0")
    add("q90_411.jpg", jpeg(base, 90, 0x411111), "4:1:1")
    add("progressive_420.jpg", jpeg(base, 85, 0x221111, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "progressive, 4:2:0")
    add("restart_420.jpg", jpeg(base, 90, 0x221111, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]),
        "restart markers every 2 MCUs, 4:2:0")
    add("optimized_422.jpg", jpeg(base, 75, 0x211111, [cv2.IMWRITE_JPEG_OPTIMIZE, 1]),
        "optimised Huffman tables, 4:2:2")
    grey = cv2.cvtColor(base[:, :, ::-1].copy(), cv2.COLOR_BGR2GRAY)
    add("grey.jpg", encode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 90]), "greyscale (1 component)")

    for (w, h), seed in [((1, 1), 2), ((17, 9), 3), ((33, 65), 4), ((101, 57), 5)]:
        img = content(w, h, seed)
        add(f"odd_{w}x{h}_420.jpg", jpeg(img, 90, 0x221111), f"{w}x{h}, 4:2:0")
    add("odd_17x9_422.jpg", jpeg(content(17, 9, 6), 90, 0x211111), "17x9, 4:2:2")
    add("odd_33x65_440.jpg", jpeg(content(33, 65, 7), 90, 0x121111), "33x65, 4:4:0")
    add("larger_160x96_420.jpg", jpeg(content(160, 96, 8), 92, 0x221111), "160x96, 4:2:0")

    # EXIF orientation (OpenCV transposes/flips after decoding). 40x24 so that 5-8 swap the sides.
    small = jpeg(content(40, 24, 9), 90, 0x221111)
    for o in range(1, 9):
        add(f"exif_o{o}.jpg", with_segments(small, [exif(o)]), f"EXIF orientation {o}, little-endian")
    add("exif_o6_be.jpg", with_segments(small, [exif(6, big_endian=True)]),
        "EXIF orientation 6, big-endian")
    add("exif_o9.jpg", with_segments(small, [exif(9)]), "EXIF orientation 9 (invalid: ignored)")
    xmp = app1(b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    add("exif_after_xmp.jpg", with_segments(small, [xmp, exif(6)]),
        "XMP APP1 before the EXIF APP1: only the first APP1 is read, orientation ignored")
    add("exif_no_header.jpg",
        with_segments(small, [app1(b"Abcd\0\0" + tiff_ifd([(ORIENTATION, SHORT, 1, 6)]))]),
        "APP1 without the Exif identifier: its first 6 bytes are skipped unchecked, orientation 6 applied")
    add("exif_long_le.jpg", with_segments(small, [exif(8, typ=LONG)]),
        "orientation 8 stored as LONG, little-endian: read as its first 16 bits (8)")
    add("exif_long_be.jpg", with_segments(small, [exif(8, big_endian=True, typ=LONG)]),
        "orientation 8 stored as LONG, big-endian: read as its first 16 bits (0), ignored")
    add("exif_duplicate.jpg",
        with_segments(small, [app1(b"Exif\0\0" + tiff_ifd([(ORIENTATION, SHORT, 1, 6),
                                                          (ORIENTATION, SHORT, 1, 8)]))]),
        "two orientation entries: the first (6) wins")
    add("exif_bad_entry_first.jpg",
        with_segments(small, [app1(b"Exif\0\0" + tiff_ifd([(DESCRIPTION, ASCII, 100, 5000),
                                                          (ORIENTATION, SHORT, 1, 6)]))]),
        "a string entry pointing past the data before the orientation: parsing stops, ignored")
    add("exif_bad_entry_after.jpg",
        with_segments(small, [app1(b"Exif\0\0" + tiff_ifd([(ORIENTATION, SHORT, 1, 3),
                                                          (DESCRIPTION, ASCII, 100, 5000)]))]),
        "a bad entry after the orientation: orientation 3 applied")
    sos = small.index(b"\xff\xda")
    add("exif_before_sos.jpg", small[:sos] + exif(5) + small[sos:],
        "EXIF APP1 after the tables, just before the scan: orientation 5 applied")

    # Four components: Adobe CMYK (Pillow) and YCCK (libturbojpeg).
    cmyk_src = Image.fromarray(content(48, 32, 10), "RGB").convert("CMYK")
    path = os.path.join(OUT, "tmp_cmyk.jpg")
    cmyk_src.save(path, quality=90)
    with open(path, "rb") as f:
        cmyk_bytes = f.read()
    os.remove(path)
    add("cmyk.jpg", cmyk_bytes, "Adobe CMYK JPEG (Pillow), 4 components")
    ycck = ycck_jpeg(content(48, 32, 11))
    if ycck is None:
        print("libturbojpeg not found: ycck.jpg skipped", file=sys.stderr)
    else:
        add("ycck.jpg", ycck, "YCCK JPEG (libturbojpeg from CMYK), 4:2:0")

    # 12-bit: the SOF precision byte set to 12. OpenCV's 8-bit libjpeg-turbo rejects it.
    p12 = bytearray(small)
    sof = p12.index(b"\xff\xc0")
    p12[sof + 4] = 12
    add("precision12.jpg", bytes(p12), "12-bit sample precision", expect_error="12-bit")

    # libjpeg warnings do not fail OpenCV's decode; errors do, also after a warning.
    sos = base_jpg.index(b"\xff\xda")
    add("warning_extraneous.jpg", base_jpg[:sos] + b"\x12\x34\x56" + base_jpg[sos:],
        "3 stray bytes before the scan: libjpeg warns (extraneous bytes), the image is complete")
    prog = jpeg(base, 90, 0x221111, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    scans = [i for i in range(len(prog) - 1) if prog[i:i + 2] == b"\xff\xda"]
    bad = bytearray(prog)
    ns = bad[scans[2] + 4]
    bad[scans[2] + 5 + 2 * ns] = 70  # spectral start Ss = 70 in the third scan
    bad = bytes(bad)
    add("error_progression.jpg", bad, "third scan with Ss = 70: libjpeg error",
        expect_error="Invalid progressive parameters")
    add("warning_then_error.jpg", bad[:scans[1]] + b"\x12\x34\x56" + bad[scans[1]:],
        "stray bytes before the second scan (warning), then the bad third scan (error)",
        expect_error="Invalid progressive parameters")

    # WebP (OpenCV's libwebp) and PNG: kept exact by the `image` crate path.
    add("webp_lossy.webp", encode(".webp", base[:, :, ::-1].copy(), [cv2.IMWRITE_WEBP_QUALITY, 80]),
        "lossy WebP, quality 80")
    add("webp_lossless.webp", encode(".webp", base[:, :, ::-1].copy(), [cv2.IMWRITE_WEBP_QUALITY, 101]),
        "lossless WebP")
    add("webp_33x65.webp", encode(".webp", content(33, 65, 12)[:, :, ::-1].copy(),
                                 [cv2.IMWRITE_WEBP_QUALITY, 75]), "lossy WebP, 33x65")
    rgb16 = (content(24, 16, 13).astype(np.uint16) * 257 + np.uint16(37))
    add("png_rgb16.png", encode(".png", rgb16[:, :, ::-1].copy(), []), "16-bit RGB PNG")
    add("png_grey.png", encode(".png", grey, []), "8-bit greyscale PNG")
    pal = Image.fromarray(content(24, 16, 14), "RGB").quantize(16)
    path = os.path.join(OUT, "tmp_pal.png")
    pal.save(path)
    with open(path, "rb") as f:
        pal_bytes = f.read()
    os.remove(path)
    add("png_palette.png", pal_bytes, "palette PNG, 16 colours")
    rgba = np.dstack([content(24, 16, 15), np.linspace(0, 255, 24 * 16).reshape(16, 24)])
    add("png_rgba.png", encode(".png", rgba.astype(np.uint8)[:, :, [2, 1, 0, 3]].copy(), []),
        "RGBA PNG (alpha dropped)")

    with open(os.path.join(OUT, "fixtures.json"), "w") as f:
        json.dump({
            "made_by": "scripts/make_jpeg_fixtures.py",
            "opencv": cv2.__version__,
            "cases": CASES,
        }, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"{len(CASES)} cases, {total} bytes in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
