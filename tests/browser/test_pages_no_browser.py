"""The HIT page's own assets: small, plain ES modules, no build step (no browser needed)."""
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend" / "hit"


@pytest.fixture
def batch(db, taxonomy):
    from annotation.models import Batch, Dataset

    return Batch.objects.create(dataset=Dataset.objects.create(name="assets"))


def test_own_js_and_css_stay_under_200_kb_and_need_no_build_step(client, batch):
    files = sorted(p for p in STATIC.iterdir() if p.suffix in (".js", ".css"))
    total = sum(p.stat().st_size for p in files)
    assert 0 < total < 200 * 1024, f"{total} bytes"
    html = client.get(f"/hit/{batch.uuid}/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert assets and all(a.startswith("/static/frontend/hit/") for a in assets)   # nothing else is loaded
    # every ES module import resolves to a file that is there (no bundler, no node_modules)
    for path in files:
        for target in re.findall(r'from "(\.[^"]+)"', path.read_text()):
            assert (path.parent / target).resolve().is_file(), f"{path.name} imports missing {target}"
