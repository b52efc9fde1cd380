"""A real headless browser for the drill report: Debian's chromium renders the page, gives back
its DOM and a screenshot, and the screenshot's pixels are read to check what a person sees."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Screenshots are kept here for people to look at (CI can upload the directory).
ARTIFACTS = Path(os.environ.get("DRCHECK_TEST_ARTIFACTS", REPO / "test-artifacts"))
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run",
          "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
          # A page that tried to fetch anything would fail to: there is nowhere to fetch from.
          "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def colour_share(screenshot: Path, colour: tuple[int, int, int], tolerance: int = 8,
                 box: tuple[int, int, int, int] | None = None) -> float:
    """The share of the screenshot's pixels (or of ``box``) that are ``colour``."""
    from PIL import Image

    with Image.open(screenshot) as image:
        rgb = image.convert("RGB")
        if box is not None:
            rgb = rgb.crop(box)
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        total = rgb.width * rgb.height
    near = sum(count for count, found in colours
               if all(abs(found[i] - colour[i]) <= tolerance for i in range(3)))
    return near / max(1, total)


def render(page: Path, screenshot: Path, width: int = 1280, height: int = 2400) -> str:
    """The page's DOM after chromium loaded it; the screenshot is written to ``screenshot``."""
    binary = chromium()
    assert binary is not None
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="drcheck-chromium-") as profile:
        done = subprocess.run(
            [binary, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--screenshot={screenshot}", "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert screenshot.is_file(), done.stderr[-2000:]
    return done.stdout


def hex_colour(text: str) -> tuple[int, int, int]:
    text = text.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
