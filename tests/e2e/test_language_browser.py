"""The app in each language, in a real browser: the browser's language is the default, every page speaks it
(no English left on a Chinese page but names), and the sidebar's switch is kept across pages and a refresh."""

from __future__ import annotations

import re

from appserver import returning_visitor
from playwright.sync_api import Page, expect
from test_browser import wait_for_app

from mnist_core.i18n import _, using

PAGES = ("Data", "Model", "Train", "Report", "Runs", "Predict", "Tune")
# Names that stay as they are in any language: products, formats, the tutorial's code words, units
NAMES = {
    "MNIST", "Fashion", "PyTorch", "Flux", "Julia", "Captum", "Optuna", "ReLU", "ReLUs", "relu", "tanh", "sigmoid",
    "gelu", "ADAM", "Adam", "Descent", "Momentum", "Chain", "Conv", "Dense", "softmax", "GlobalMeanPool", "flatten",
    "Dropout", "BatchNorm", "CPU", "GPU", "CUDA", "MPS", "NCHW", "WHCN", "IDX", "README", "mlxtend", "TPE", "grid",
    "random", "auto", "linear", "log", "train", "gradient", "manual", "accuracy", "model", "png", "jpg", "zip",
    "PNG", "JPEG", "lr", "min", "max", "Otsu", "torchvision", "Streamlit", "SQLite", "MAX", "DATA", "DIR", "logits",
    "Leslie", "Smith", "fastai",
}  # fmt: skip
WORD = re.compile(r"(?<![\w./-])[A-Za-z]{3,}(?![\w./-])")
CALL = re.compile(r"[\w.!]+\([^()]*\)")  # code named in a sentence: Flux.train!(loss, ps, data, opt)
KEYWORD = re.compile(r"\b\w+=\S*")  # code's keyword arguments (stride=2, keepdim=True), as the layer table shows


def settled(page: Page) -> None:
    """Until the page's script has run to its end: no running indicator, and its text the same on three polls
    in a row (a page draws in steps after its title)."""
    page.wait_for_function(
        """() => {
            const text = document.querySelector('[data-testid=stMain]').innerText;
            const busy = document.querySelector('[data-testid=stStatusWidget]') !== null;
            window.__same = !busy && text === window.__last ? (window.__same || 0) + 1 : 0;
            window.__last = text;
            return window.__same >= 3;
        }""",
        polling=200,
        timeout=120_000,
    )


def english_words(page: Page) -> set[str]:
    """English words a visitor reads in the main area and the sidebar (code blocks, inputs and charts'
    canvases are not prose), less the names that stay."""
    text = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=stMain], [data-testid=stSidebar]')].map((root) => {
            const copy = root.cloneNode(true);
            // Streamlit's own words (the file uploader's "Limit 25MB per file") are not the app's to translate
            const skip = 'pre, code, canvas, svg, input, textarea, style, script, '
                + '[data-testid=stFileUploaderDropzoneInstructions]';
            copy.querySelectorAll(skip).forEach((n) => n.remove());
            return copy.innerText;
        }).join('\\n')"""
    )
    return {w for w in WORD.findall(KEYWORD.sub(" ", CALL.sub(" ", text))) if w not in NAMES}


def test_a_chinese_browser_gets_every_page_in_chinese_and_can_switch(browser, server):
    context = returning_visitor(browser, server["url"], viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(60_000)
    with using("zh_CN"):
        home, test_images = _("Watch a neural network learn"), _("Test images")
        titles, device = {name: _(name) for name in PAGES}, _("Device")
        titles["Predict"] = _("Predict your own digit")
    page.goto(server["url"])
    expect(page.get_by_role("heading", name=home)).to_be_visible(timeout=120_000)
    expect(page.get_by_text(test_images).first).to_be_visible(timeout=120_000)
    assert home == "看神经网络学习"
    left = {"Home": english_words(page)}
    for name in PAGES:
        page.goto(f"{server['url']}/{name}")
        wait_for_app(page, device)
        expect(page.locator("[data-testid=stMain] h1").first).to_have_text(titles[name], timeout=120_000)
        settled(page)  # all of the page, not only its title
        left[name] = english_words(page)
    assert not any(left.values()), {name: sorted(words) for name, words in left.items() if words}

    # The switch: English from now on, on this page, the next, and after a refresh (a cookie keeps it)
    page.get_by_test_id("stSidebar").get_by_role("combobox").first.click()
    page.get_by_role("option", name="English").click()
    expect(page.locator("[data-testid=stMain] h1").first).to_have_text("Tune")
    page.goto(f"{server['url']}/Model")
    expect(page.locator("[data-testid=stMain] h1").first).to_have_text("Model")
    page.reload()
    expect(page.locator("[data-testid=stMain] h1").first).to_have_text("Model")
    context.close()


def test_an_english_browser_gets_english(page: Page, server):
    page.goto(server["url"])
    expect(page.get_by_role("heading", name="Watch a neural network learn")).to_be_visible(timeout=120_000)
    page.goto(f"{server['url']}/Train")
    wait_for_app(page)
    expect(page.get_by_role("button", name="Start training")).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_role("combobox").first).to_have_value("English")
