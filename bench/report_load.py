"""How fast a report and its explorer open in headless Chromium, and how large the file is.

    python bench/report_load.py results/scale_2000152/report.html [--repeats 3] [--shots DIR]

Prints the file size (and the explorer's embedded data within it), the time from navigation
to the end of the ``load`` event (the explorer's script has drawn its views by then; median
and range over ``--repeats`` fresh loads), and how long the three views take to draw: the
ion view after an m/z search, the partner's view after a click, the largest cluster's view.
With ``--shots``, saves a screenshot of each view (the README's come from the demo this way).
Needs Debian's chromium and chromium-driver, and selenium.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser import headless_chromium
from selenium.webdriver.common.by import By

VIEWS = {
    "ion": "const i = Math.floor(D.mz.length / 2); box.value = D.mz[i].toFixed(4);"
    "box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));",
    "partner": "document.querySelector('#ex-partners tr').click();",
    "cluster": "const k = D.clusters.reduce((b, c, i, a) => c.size > a[b].size ? i : b, 0);"
    "location.hash = 'explore/cluster/' + k;",
}


def timed_view(driver, action: str) -> float:
    """Milliseconds from the action to the next frame after the new view has been drawn."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "const D = JSON.parse(document.getElementById('explorer-data').textContent);"
        "const box = document.getElementById('ex-search'); const before = document.body"
        ".dataset.view; const t0 = performance.now();"
        f"{action}"
        "(function wait() { if (document.body.dataset.view !== before)"
        " requestAnimationFrame(() => done(performance.now() - t0)); else setTimeout(wait, 0);"
        "})();"
    )
    return driver.execute_async_script(script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shots", type=Path, help="folder for a screenshot of each view")
    args = parser.parse_args()
    text = args.report.read_text(encoding="utf-8")
    blob = re.search(r'id="explorer-data">(.*?)</script>', text, re.S)
    data_mb = len(blob.group(1)) / 1e6 if blob else 0.0
    print(f"{args.report}: {len(text) / 1e6:.1f} MB, explorer data {data_mb:.1f} MB")
    loads, views = [], {name: [] for name in VIEWS}
    for repeat in range(args.repeats):
        driver = headless_chromium()  # a fresh browser: nothing cached
        try:
            driver.get(args.report.resolve().as_uri())
            loads.append(
                driver.execute_script(
                    "const t = performance.timing; return t.loadEventEnd - t.navigationStart"
                )
            )
            for name, action in VIEWS.items():
                views[name].append(timed_view(driver, action))
                if args.shots and repeat == 0:
                    args.shots.mkdir(parents=True, exist_ok=True)
                    driver.find_element(By.ID, "explore").location_once_scrolled_into_view  # noqa: B018
                    driver.save_screenshot(args.shots / f"explorer_{name}.png")
        finally:
            driver.quit()
    print(
        f"open (navigation to load, ms): median {statistics.median(loads):.0f}, "
        f"range {min(loads):.0f}-{max(loads):.0f} over {len(loads)} loads"
    )
    for name, times in views.items():
        print(f"{name} view (ms): median {statistics.median(times):.0f}, max {max(times):.0f}")


if __name__ == "__main__":
    main()
