"""The report as a person opens it: from the file, every figure drawn, nothing fetched."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# Draws the image on a canvas: its natural size and how many distinct colours it has (capped at 17).
IMAGE_STATS = """img => {
  const stats = {src: img.src.slice(0, 40), complete: img.complete,
                 width: img.naturalWidth, height: img.naturalHeight, colours: 0};
  if (!img.naturalWidth) return stats;
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < pixels.length && seen.size <= 16; i += 4) {
    seen.add(pixels.slice(i, i + 4).join());
  }
  stats.colours = seen.size;
  return stats;
}"""


def image_stats(page) -> list[dict]:
    images = page.get_by_role("img")
    return [images.nth(i).evaluate(IMAGE_STATS) for i in range(images.count())]


def drawn(stats: dict) -> bool:
    return stats["complete"] and stats["width"] > 0 and stats["height"] > 0 and stats["colours"] > 1


def test_report_opens_from_the_file_with_every_figure_drawn_and_no_request(
    browsing, pipeline_outputs
):
    report = Path(pipeline_outputs.settings.report_url)
    page = browsing.page
    page.goto(report.as_uri())

    expect(
        page.get_by_role("heading", name="Palmer penguins: data and body-mass model")
    ).to_be_visible()
    figures = report.read_text(encoding="utf-8").count("<img")
    assert figures >= 3
    expect(page.get_by_role("img")).to_have_count(figures)
    page.wait_for_load_state("load")
    stats = image_stats(page)
    assert [s for s in stats if not drawn(s)] == [], stats

    assert browsing.requests == [f"GET {report.as_uri()}"], browsing.requests
    assert browsing.blocked == []


def test_the_figure_check_sees_blank_and_broken_images(browsing, tmp_path):
    """The check above can fail: a one-colour image and an undecodable one are not 'drawn'."""
    import matplotlib.pyplot as plt
    import numpy as np

    blank = tmp_path / "blank.png"
    plt.imsave(blank, np.ones((20, 30, 3)))
    uri = "data:image/png;base64," + base64.b64encode(blank.read_bytes()).decode()
    page_file = tmp_path / "page.html"
    page_file.write_text(
        f'<img alt="blank" src="{uri}"><img alt="broken" src="data:image/png;base64,AAAA">'
    )
    browsing.page.goto(page_file.as_uri())
    browsing.page.wait_for_load_state("load")
    stats = image_stats(browsing.page)
    assert len(stats) == 2
    assert stats[0]["width"] == 30 and stats[0]["colours"] == 1 and not drawn(stats[0])
    assert stats[1]["width"] == 0 and not drawn(stats[1])
