"""Real browser: the Train tab's "Try it on your own images" takes a .keras upload and images, and draws a top-5 chart per image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import screenshot, wait_idle

pytestmark = pytest.mark.e2e

TIMEOUT = 90_000
SAMPLES = ROOT / "assets" / "samples"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small model saved as the Train tab saves one (or $PREDICT_MODEL, e.g. a trained ResNet-20 for the README shot)."""
    given = os.environ.get("PREDICT_MODEL")
    if given:
        return Path(given)
    from explorer import inference
    from explorer.config import ResNetConfig
    from explorer.keras_build import build_model

    path = tmp_path_factory.mktemp("predict") / "resnet-8.keras"
    path.write_bytes(inference.save_model_bytes(build_model(ResNetConfig(depth=8, filters=4))))
    return path


def test_upload_a_model_and_images_shows_top5_charts(page, app_url, model_file):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{app_url}/?preset=resnet20&tab=Train")
    wait_idle(page, TIMEOUT)
    expander = page.locator('[data-testid="stExpander"] summary').filter(has_text="Try it on your own images")
    expander.click()
    page.locator('[data-testid="stFileUploader"]').filter(has_text="A trained model").locator('input[type="file"]') \
        .set_input_files(str(model_file))
    images = page.locator('[data-testid="stFileUploader"]').filter(has_text="Your images")
    images.wait_for(timeout=TIMEOUT)
    images.locator('input[type="file"]').set_input_files([str(SAMPLES / n) for n in ("cat.png", "ship.png", "horse.png")])
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .bars path').length >= 15",
                           timeout=TIMEOUT)
    wait_idle(page, TIMEOUT)
    assert not page.locator('[data-testid="stException"]').count()
    assert not page.locator('[data-testid="stAlertContentError"]').count()
    assert page.get_by_text("as the network sees it (32×32)").count() == 3
    page.set_viewport_size({"width": 1400, "height": 1100})
    images.evaluate("e => e.scrollIntoView({block: 'start'})")  # the uploaded images and their charts
    page.mouse.move(5, 5)  # no Plotly toolbar from a hover
    page.wait_for_timeout(800)
    path = screenshot(page, "app_predict")
    assert path.stat().st_size > 20_000
