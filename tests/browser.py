"""Headless Chromium for the report's tests and docs/screenshots.py: the DOM after the page's
scripts ran, every console message (a script error is one), and screenshots as pixels.

Chromium is Debian's `chromium` package (`.ci/run` installs it). Each call gets a fresh
profile and no network beyond the page asked for.
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
_CONSOLE = re.compile(r':CONSOLE(?:\(\d+\))?\]?[^"]*"(.*)", source: (.*)$')


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@dataclass
class Loaded:
    dom: str  # the document after its scripts ran
    console: list[str]  # every console message, script errors included


def _run(url: str, extra: list[str], width: int, height: int, timeout: float) -> tuple[str, list[str]]:
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="canary-chromium-") as profile:
        proc = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                               *extra, url], capture_output=True, text=True, timeout=timeout)
    console = [m.group(1) for line in proc.stderr.splitlines() if (m := _CONSOLE.search(line))]
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout, console


def load(url: str, *, width: int = 1400, height: int = 900, timeout: float = 90) -> Loaded:
    dom, console = _run(url, ["--dump-dom"], width, height, timeout)
    return Loaded(dom, console)


def screenshot(url: str, path: Path, *, width: int, height: int, scale: float = 1.0, timeout: float = 90) -> list[str]:
    """Write a PNG of the page laid out `width` CSS pixels wide, its first `height` of them, at
    `scale` device pixels a CSS pixel (0.5: a quarter of the pixels); returns the console messages."""
    _out, console = _run(url, [f"--screenshot={path}", f"--force-device-scale-factor={scale}"], width, height, timeout)
    if not path.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {path}")
    return console


def pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels row by row) of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _c, _f, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6), f"unsupported PNG: depth {depth}, colour {colour}"
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    out, prev = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += [tuple(line[x * bpp:x * bpp + 3]) for x in range(width)]
        prev = line
    return width, height, out


def near(rgb: tuple[int, int, int], target: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(rgb, target))


def colour_counts(px: list[tuple[int, int, int]], targets: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """How many pixels are near each target colour (one pass over the distinct colours)."""
    from collections import Counter
    seen = Counter(px)
    return {name: sum(n for rgb, n in seen.items() if near(rgb, target)) for name, target in targets.items()}
