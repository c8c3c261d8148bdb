#!/usr/bin/env python3
"""Copy the screenshots the browser tests take into docs/screenshots/ (a maintainer's step, not a test).

``tests/smart_app/test_smart_browser.py`` saves ``smart-review-page.png`` and ``demo-ehr-with-card.png``
under ``test-artifacts/`` on every run. When the page or the demo EHR changes, refresh the images
the docs show (docs/smart-app.md) with:

    .venv/bin/pytest -q -p no:randomly tests/smart_app/test_smart_browser.py
    .venv/bin/python tools/copy_doc_screenshots.py

and commit docs/screenshots/. It exits 1, copying nothing, when a screenshot is missing (the browser
tests were not run or skipped), so the docs never get half a refresh.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
DOCS = ROOT / "docs" / "screenshots"
SCREENSHOTS = ("smart-review-page.png", "demo-ehr-with-card.png")


def main() -> int:
    missing = [name for name in SCREENSHOTS if not (ARTIFACTS / name).is_file()]
    if missing:
        print(f"not in {ARTIFACTS}: {', '.join(missing)} (run tests/smart_app/test_smart_browser.py first)",
              file=sys.stderr)
        return 1
    DOCS.mkdir(parents=True, exist_ok=True)
    for name in SCREENSHOTS:
        shutil.copyfile(ARTIFACTS / name, DOCS / name)
        print(f"copied {name} -> {DOCS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
