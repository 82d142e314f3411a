"""Hostile and broken inputs: each gets a clear message, bounded memory, and changes nothing on disk.

Memory is measured, never time: tracemalloc sees Python's and numpy's allocations (where a float64 copy of
an image or an inflated gzip stream would show); a child process's peak RSS also sees Pillow's own buffers.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import make_idx_folder, write_idx
from PIL import Image, ImageDraw

from mnist_core import data, digits
from mnist_core.data import DataError, load_dataset, load_idx_folder
from mnist_core.digits import DigitError, digits_from_canvas, load_image, preprocess

MB = 2**20
SEVEN = [(80, 60), (200, 60), (120, 230)]
PILLOW_WORDS = ("DecompressionBomb", "decompression bomb", "exceeds limit", "DOS attack", "PIL", "Pillow")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """An empty working folder (the default download cache ``data/`` would land here) and no network."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setattr(data, "_check_network", lambda url, timeout=3: (_ for _ in ()).throw(DataError("offline")))
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    monkeypatch.delenv("FASHION_MNIST_DATA_DIR", raising=False)
    yield folder
    assert not any(folder.iterdir()), "a load wrote into the working folder"


def failed_load(folder: Path, name: str = "mnist") -> str:
    """Load ``folder`` expecting a DataError; its files must be untouched. Returns the message."""
    before = snapshot(folder)
    with pytest.raises(DataError) as err:
        load_dataset(name, data_dir=folder, allow_download=False)
    assert snapshot(folder) == before
    return str(err.value)


def idx_header(n: int) -> bytes:
    return struct.pack(">4i", data.IMAGE_MAGIC, n, 28, 28)


# --------------------------------------------------------------------------- data files


def test_corrupt_deflate_block_is_a_data_error(tmp_path, cwd):
    make_idx_folder(tmp_path / "d", gz=True)
    path = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[10] = 0xFF  # the first deflate block's header: block type 3 is reserved, zlib refuses it
    path.write_bytes(bytes(raw))
    msg = failed_load(tmp_path / "d")
    assert str(path) in msg and "gzip stream is damaged" in msg


def test_truncated_gzip_is_a_data_error(tmp_path, cwd):
    make_idx_folder(tmp_path / "d", gz=True)
    path = tmp_path / "d" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    msg = failed_load(tmp_path / "d")
    assert str(path) in msg and "truncated" in msg


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path, cwd):
    # A header for 10 images (7,840 bytes) followed by 200 MB of zeros: about 200 KB on disk.
    make_idx_folder(tmp_path / "d", gz=True)
    path = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(idx_header(10))
        zeros = bytes(MB)
        for _ in range(200):
            f.write(zeros)
    assert path.stat().st_size < 2 * MB
    tracemalloc.start()
    try:
        msg = failed_load(tmp_path / "d")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in msg and "more data than its header" in msg
    assert peak < 50 * MB, f"peak {peak / MB:.0f} MB: the bomb was inflated"


def test_header_claiming_gigabytes_is_refused_before_reading(tmp_path, cwd):
    make_idx_folder(tmp_path / "d")
    path = tmp_path / "d" / "train-images-idx3-ubyte"
    path.write_bytes(idx_header(2_000_000_000 // 784) + bytes(1000))  # claims 2 GB
    tracemalloc.start()
    try:
        msg = failed_load(tmp_path / "d")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in msg and "MB" in msg and peak < 10 * MB


def test_trailing_garbage_after_the_data(tmp_path, cwd):
    make_idx_folder(tmp_path / "d")
    path = tmp_path / "d" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes() + b"extra")
    assert "more data than its header" in failed_load(tmp_path / "d")


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_zero_images_is_a_data_error(tmp_path, cwd, split):
    make_idx_folder(tmp_path / "d")
    write_idx(tmp_path / "d" / f"{split}-images-idx3-ubyte", np.zeros((0, 28, 28), np.uint8))
    write_idx(tmp_path / "d" / f"{split}-labels-idx1-ubyte", np.zeros(0, np.uint8))
    msg = failed_load(tmp_path / "d")
    assert f"{split}-images-idx3-ubyte" in msg and "holds no images" in msg


def test_zero_images_in_the_cli_is_a_message_not_a_traceback(tmp_path, cwd, capsys, monkeypatch):
    from mnist_core.cli import main

    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    make_idx_folder(tmp_path / "d", n_train=0)
    code = main(["train", "--data-dir", str(tmp_path / "d"), "--offline", "--epochs", "1"])
    assert code == 2 and "holds no images" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_data_dir_variable_naming_a_missing_folder(tmp_path, cwd, monkeypatch, name):
    var = data.ENV_VARS[name]
    monkeypatch.setenv(var, str(tmp_path / "no-such-folder"))
    with pytest.raises(DataError) as err:
        load_dataset(name)  # download allowed: it must not get that far
    msg = str(err.value)
    assert var in msg and str(tmp_path / "no-such-folder") in msg and "not a folder" in msg


def test_data_dir_variable_naming_an_empty_folder(tmp_path, cwd, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="MNIST_DATA_DIR.*no IDX files"):
        load_dataset("mnist")


# --------------------------------------------------------------------------- the app remembers a failure


def test_failed_load_is_parsed_once_until_try_again(monkeypatch):
    import streamlit as st

    from ui import common

    calls = []

    def broken(name):
        calls.append(name)
        raise DataError("train-images-idx3-ubyte: damaged")

    st.cache_resource.clear()
    monkeypatch.setattr(common, "load_dataset", broken)
    try:
        for _ in range(3):
            with pytest.raises(DataError, match="damaged"):
                common.shared_dataset("mnist")
        assert calls == ["mnist"]
        common._load.clear("mnist")  # what the sidebar's "Try again" does
        with pytest.raises(DataError):
            common.shared_dataset("mnist")
        assert calls == ["mnist", "mnist"]
    finally:
        st.cache_resource.clear()


def test_damaged_mnist_gives_the_right_advice_and_try_again_recovers(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    folder = tmp_path / "mnist"
    make_idx_folder(folder, n_train=30, n_test=10)
    good = (folder / "train-labels-idx1-ubyte").read_bytes()
    (folder / "train-labels-idx1-ubyte").write_bytes(good[:20])
    monkeypatch.setenv("MNIST_DATA_DIR", str(folder))
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        text = " ".join(e.value for e in at.error) + " ".join(i.value for i in at.info)
        assert "train-labels-idx1-ubyte" in text and "MNIST_DATA_DIR" in text and "embedded" in text
        assert "Choose MNIST" not in text
        (folder / "train-labels-idx1-ubyte").write_bytes(good)
        at.run()
        assert at.error, "the failure should be remembered, not retried on every run"
        at.sidebar.button(key="retry_dataset").click().run()
        assert not at.exception and not at.error
        assert [m.value for m in at.metric][:2] == ["30", "10"]
    finally:
        st.cache_resource.clear()


# --------------------------------------------------------------------------- uploads


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR is patched (CRC included) to claim ``width`` x ``height``."""
    raw = bytearray(png_bytes(Image.new("L", (8, 8), 255)))
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


def sixteen_bit_png(side: int) -> bytes:
    """A ``side`` x ``side`` 16-bit greyscale PNG with a dark bar on white, written row by row (tiny in memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    white, bar = b"\x00" + b"\xff\xff" * side, bytearray(b"\x00" + b"\xff\xff" * side)
    bar[1 + 2 * (side // 3) : 1 + 2 * (side // 3 + side // 20)] = bytes(2 * (side // 20))
    comp, idat = zlib.compressobj(6), []
    for row in range(side):
        idat.append(comp.compress(bytes(bar) if side // 5 <= row < 4 * side // 5 else white))
    idat.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(idat)) + chunk(b"IEND", b"")


def traced_peak(func, *args):
    tracemalloc.start()
    try:
        result = func(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_five_black_pixels_around_a_white_one():
    # The 3x3 median sees ink only at (10, 10), a white pixel: its box held no ink and the centring divided by 0.
    a = np.full((28, 28), 255, np.uint8)
    for r, c in [(9, 9), (9, 11), (11, 9), (11, 11), (10, 9)]:
        a[r, c] = 0
    pre = preprocess(load_image(png_bytes(Image.fromarray(a))))
    assert pre.final.shape == (28, 28) and pre.final.max() == 255


def test_few_pixels_never_raise_anything_but_digit_error():
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = np.full((12, 12), 255, np.uint8)
        a.flat[rng.choice(a.size, rng.integers(1, 8), replace=False)] = 0
        try:
            preprocess(load_image(png_bytes(Image.fromarray(a))))
        except DigitError:
            pass


def test_white_ink_on_transparent_is_found():
    img = Image.new("RGBA", (280, 280), (255, 255, 255, 0))
    ImageDraw.Draw(img).line(SEVEN, fill=(255, 255, 255, 255), width=22)
    dark = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(dark).line(SEVEN, fill=0, width=22)
    pre = preprocess(load_image(png_bytes(img)))
    assert pre.final.max() == 255 and (pre.final > 128).sum() > 40
    assert np.corrcoef(pre.final.ravel(), preprocess(dark).final.ravel())[0, 1] > 0.97


def test_huge_sixteen_bit_png_is_shrunk_in_bounded_memory():
    data_ = sixteen_bit_png(5000)  # 25 megapixels, 50 MB decoded, a few dozen KB uploaded
    assert len(data_) < 200_000
    pre, peak = traced_peak(lambda b: preprocess(load_image(b)), data_)
    assert pre.final.max() == 255 and max(pre.grey.shape) == digits.WORK_SIZE
    # No float64 (200 MB) copy of the full image: the traced peak is the 1024 px working image's arrays.
    assert peak < 50 * MB, f"traced peak {peak / MB:.0f} MB"


def test_peak_memory_of_the_worst_uploads(tmp_path):
    """In a child process, whose peak RSS also counts Pillow's decode buffers that tracemalloc cannot see."""
    rgba = Image.new("RGBA", (5000, 5000), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line([(x * 16, y * 16) for x, y in SEVEN], fill=(255, 255, 255, 255), width=300)
    (tmp_path / "rgba.png").write_bytes(png_bytes(rgba))
    (tmp_path / "palette.png").write_bytes(png_bytes(rgba.convert("P")))
    (tmp_path / "grey16.png").write_bytes(sixteen_bit_png(5000))
    del rgba
    script = textwrap.dedent(
        """
        import resource, sys
        from pathlib import Path
        from mnist_core.digits import load_image, preprocess
        uploads = [p.read_bytes() for p in sorted(Path(sys.argv[1]).glob("*.png"))]
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for upload in uploads:
            assert preprocess(load_image(upload)).final.max() == 255
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
        """
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    grown_mb = int(out.stdout.split()[-1])
    # 25 megapixels of RGBA decode to 100 MB in Pillow; before the fix these cost 230-670 MB.
    assert grown_mb < 160, f"peak RSS grew by {grown_mb} MB"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns past 89 MP; we refuse
@pytest.mark.parametrize("side", [100_000, 10_000], ids=["past-pillow-limit", "past-our-limit"])
def test_decompression_bomb_message_is_ours(side):
    with pytest.raises(DigitError) as err:
        load_image(png_claiming(side, side))
    msg = str(err.value)
    assert "too large" in msg or "megapixels" in msg
    assert not any(word in msg for word in PILLOW_WORDS), msg


def test_damaged_file_message_is_ours():
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    upload = png_bytes(Image.fromarray(noise))
    with pytest.raises(DigitError) as err:
        load_image(upload[: len(upload) // 2])
    assert str(err.value) == "The image file is damaged or truncated; save it again and re-upload."


def test_an_unexpected_failure_is_still_a_digit_error(monkeypatch):
    def explode(*args):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(digits, "_crop_ink", explode)
    with pytest.raises(DigitError) as err:
        preprocess(Image.new("L", (50, 50), 255))
    assert "internal detail" not in str(err.value) and "could not be processed" in str(err.value)
    monkeypatch.setattr(digits, "_flatten", explode)
    with pytest.raises(DigitError):
        load_image(png_bytes(Image.new("L", (50, 50), 255)))


@pytest.mark.parametrize(
    "canvas",
    [
        np.full((20, 20, 4), np.nan, np.float32),
        np.zeros((0, 20, 4), np.uint8),
        np.full((20, 20, 4), 1e30, np.float64),
        np.zeros((20, 20), np.uint8),
    ],
    ids=["nan", "empty", "huge-values", "no-channels"],
)
def test_odd_canvases_give_a_digit_error(canvas):
    with pytest.raises(DigitError):
        preprocess(digits_from_canvas(canvas))


def test_load_idx_folder_reads_no_more_than_the_header_implies(tmp_path):
    # The same folder loads fine once the bomb's tail is gone: the limit is the header, not the file size.
    arrays = make_idx_folder(tmp_path, n_train=10, gz=True)
    assert load_idx_folder(tmp_path).n_train == 10
    assert np.array_equal(load_idx_folder(tmp_path).train_images.numpy(), arrays["train-images-idx3-ubyte"])
