"""Open a report in headless Chromium, offline, and check that it renders.

    python bench/screenshot_report.py results/demo/report.html --out /tmp/shots

Checks, exit 1 when one fails:

- the HTML references no external URL (only the paper link, which is never loaded);
- every ``<img>`` decoded (``complete`` and ``naturalWidth > 0``);
- the browser fetched nothing over the network: DNS is disabled for every host
  (``--host-resolver-rules``) and the page's resource timing lists no ``http(s)`` entry.

Writes a full-page screenshot ``<out>/<name>.png`` and the same page cut into
``<out>/<name>_NN.png`` parts of at most ``--part-height`` pixels, easier to look at.

How: a copy of the report gets a small script that, on ``load``, writes the image and
network findings into the DOM; ``--dump-dom`` prints that DOM. A second Chromium run takes
the screenshot with the window as tall as the page. No webdriver is needed.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from msicoloc.report import external_urls

PROBE = """<script>
addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0)
                     .map(i => i.alt || i.src.slice(0, 80));
  const fetched = performance.getEntriesByType("resource").map(e => e.name)
                     .filter(n => /^(https?|wss?|ftp):/i.test(n));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    images: imgs.length, broken: broken, fetched: fetched,
    height: document.documentElement.scrollHeight,
  });
  document.body.appendChild(out);
});
</script>"""
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"
WIDTH = 1280


def chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browser(binary: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium offline with a throwaway profile."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",  # containers run as root, where the sandbox refuses to start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                OFFLINE,
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def probe(binary: str, report: Path, workdir: Path) -> dict:
    """Load a probed copy of ``report`` from elsewhere: a relative image would break."""
    text = report.read_text(encoding="utf-8")
    probed = workdir / "probed.html"
    probed.write_text(re.sub(r"</body>", PROBE + "</body>", text, count=1), encoding="utf-8")
    res = browser(
        binary,
        f"--window-size={WIDTH},900",  # the width the screenshot uses: same line wrapping
        "--virtual-time-budget=10000",
        "--dump-dom",
        probed.as_uri(),
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    if not found:
        raise RuntimeError(f"Chromium gave no probe result: {res.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))


def screenshot(binary: str, report: Path, png: Path, height: int) -> None:
    """Full-page PNG: the window is made as tall as the page."""
    res = browser(
        binary,
        f"--window-size={WIDTH},{height}",
        f"--screenshot={png}",
        "--virtual-time-budget=10000",
        report.as_uri(),
    )
    if not png.is_file():
        raise RuntimeError(f"no screenshot written: {res.stderr[-2000:]}")


def split(png: Path, part_height: int) -> list[Path]:
    """Cut a tall screenshot into parts (for viewers that shrink tall images)."""
    from PIL import Image

    parts = []
    with Image.open(png) as img:
        for i, top in enumerate(range(0, img.height, part_height)):
            part = png.with_name(f"{png.stem}_{i:02d}.png")
            img.crop((0, top, img.width, min(top + part_height, img.height))).save(part)
            parts.append(part)
    return parts


def check(report: Path, out: Path, part_height: int = 1600, min_images: int = 1) -> list[str]:
    """Run every check; return the problems found (empty = all good)."""
    binary = chromium()
    if binary is None:
        return ["no chromium binary on PATH (apt-get install chromium)"]
    problems = [
        f"external reference in the HTML: {u}"
        for u in external_urls(report.read_text(encoding="utf-8"))
    ]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        found = probe(binary, report, Path(tmp))
    problems += [f"image did not load: {b}" for b in found["broken"]]
    problems += [f"network request: {u}" for u in found["fetched"]]
    if found["images"] < min_images:
        problems.append(f"the page has {found['images']} images, expected {min_images}+")
    shot = out / f"{report.stem}.png"
    screenshot(binary, report.resolve(), shot, max(found["height"], 600))
    parts = split(shot, part_height)
    print(
        f"{found['images']} images, page {WIDTH} x {found['height']} px; "
        f"screenshot {shot} ({len(parts)} parts)"
    )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report.html to check")
    parser.add_argument(
        "--out", type=Path, default=Path("bench/work/screenshot"), help="folder for the screenshots"
    )
    parser.add_argument(
        "--part-height", type=int, default=1600, help="height (px) of the screenshot parts"
    )
    parser.add_argument(
        "--min-images",
        type=int,
        default=1,
        help="fail when the page has fewer images (0 for summary.html)",
    )
    args = parser.parse_args()
    problems = check(args.report.resolve(), args.out, args.part_height, args.min_images)
    for p in problems:
        print("FAIL:", p)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
