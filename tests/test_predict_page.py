"""AppTest of the Predict page: a photo in uneven light is read right, and an input unlike MNIST is flagged
however sure the model is."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from helpers import confidently_right, trained_run
from PIL import Image
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")


def png(grey: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def shadowed_photo(image_28: np.ndarray) -> bytes:
    """A digit as dark ink (35) on paper (225) at 280 px, the right 55% of the page in a shadow at 40% light."""
    ink = np.asarray(Image.fromarray(image_28).resize((280, 280), Image.BICUBIC), np.float32) / 255
    cols = np.arange(280, dtype=np.float32)[None, :]
    return png((225 - 190 * ink) * (1 - 0.6 / (1 + np.exp(-(cols - 126) / 5))))


def images(at: AppTest) -> list:
    """Every st.image of the page (AppTest has no accessor for them): each proto's ImageList entries."""
    found, todo = [], [at._tree]
    while todo:
        node = todo.pop()
        children = getattr(node, "children", None) or {}
        todo.extend(reversed(list(children.values() if isinstance(children, dict) else children)))  # page order
        if type(node).__name__ == "Image":
            found.extend(node.proto.imgs)
    return found


def upload(data: bytes) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/6_Predict.py").run()
    at.file_uploader[0].set_value(("photo.png", data, "image/png")).run()
    assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
    return at


def test_a_shadowed_photo_is_read_right(runs_dir, sample):
    index = confidently_right(trained_run(runs_dir, sample), sample)
    at = upload(shadowed_photo(sample.test_images[index].numpy()))
    headline = next(s.value for s in at.subheader if s.value.startswith("Prediction"))
    assert headline.startswith(f"Prediction: {int(sample.test_labels[index])} ")
    assert any("Otsu" in c.value for c in at.caption)  # the page says how ink was told from paper
    # What it looked at: a heat-map for the answer and one for the runner-up, for each attribution method
    truth = str(int(sample.test_labels[index]))
    for method in ("integrated_gradients", "saliency", "occlusion"):
        at.radio(key="why_method").set_value(method).run()
        captions = [img.caption for img in images(at) if "speaks for it" in img.caption]
        assert len(captions) == 2 and captions[0].startswith(truth), (method, captions)


def test_a_blob_is_flagged_as_unlike_mnist(runs_dir, sample):
    trained_run(runs_dir, sample, epochs=1)
    blob = np.full((280, 280), 230.0)
    blob[115:165, 115:165] = 20  # a filled square: far more ink than any digit
    at = upload(png(blob))
    assert any("does not look like an MNIST digit" in w.value for w in at.warning), [w.value for w in at.warning]


def test_report_explains_each_confident_mistake(runs_dir, sample):
    """Issue 26: on Report, each confident mistake's heat-maps, for the wrong answer and for the true class."""
    from mnist_core.runs import load_run

    run = load_run(trained_run(runs_dir, sample, epochs=1))
    mistakes = run.report.mistakes
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/4_Report.py").run()
    assert not at.exception, at.exception
    cells = mistakes[["index", "true", "predicted"]].itertuples(index=False)
    wanted = [f"#{int(i)}: for {p} | for {t}" for i, t, p in cells]
    for method in ("integrated_gradients", "occlusion"):
        at.radio(key=f"why_mistakes_{run.run_id}").set_value(method).run()
        captions = [img.caption for img in images(at) if " | for " in img.caption]
        assert captions == wanted and len(wanted) == 16, (method, captions[:2])
    assert not at.exception, at.exception
