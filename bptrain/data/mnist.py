"""MNIST and Fashion-MNIST from their four IDX files, found locally or downloaded once.

Lookup order for the files (gzip or raw): the ``root`` option, ``$BPTRAIN_DATA_DIR/<name>/``,
the directory a run found them in before (``source``, recorded in its checkpoints), the user
cache (``$XDG_CACHE_HOME/bptrain/<name>``, else ``~/.cache/bptrain/<name>``). Only when no
directory has the files needed are they downloaded into the cache from ``MIRRORS`` (a test may
point these at a local server or at file:// URLs). Scoring the test split needs only the two
test files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from bptrain.data.augment import parse as parse_augment
from bptrain.data.dataset import Dataset, classification
from bptrain.data.download import Digest, cache_dir, download
from bptrain.data.idx import read_idx
from bptrain.data.images import MappedImages
from bptrain.data.options import CommonOptions, Footprint, Scale, check_positive
from bptrain.errors import ConfigError, DataError

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
TEST_FILES = (TEST_IMAGES, TEST_LABELS)
TRAIN_SIZE, TEST_SIZE = 60_000, 10_000
# Bytes per image while loading: the raw bytes, kept as they are (``MappedImages``), and for
# "standardize" the float64 chunks its statistics are summed in (measured with tracemalloc on
# the 70,000 images: 1.05 bytes per pixel, 3.8 standardized; 7.3 and 11.9 when the pixels were
# copied to float32), with a margin.
PEAK_BYTES_PER_IMAGE = 6 * 28 * 28

# Base URLs; a file's URL is base + name + ".gz". Tried in order.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion_mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ],
}

DIGESTS: dict[str, dict[str, Digest]] = {
    # SHA-256 of the uncompressed files, computed from the originals (see shared/data/README).
    "mnist": {
        TRAIN_IMAGES: Digest(
            content="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        ),
        TRAIN_LABELS: Digest(
            content="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
        ),
        TEST_IMAGES: Digest(
            content="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
        ),
        TEST_LABELS: Digest(
            content="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
        ),
    },
    # Fashion-MNIST's published SHA-256 digests are of the .gz archives that Zalando serves
    # (both mirrors above serve the same archives); we had no copy of the data to compute the
    # digests of the uncompressed content, so the archive bytes are what is verified here.
    "fashion_mnist": {
        TRAIN_IMAGES: Digest(
            archive="08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"
        ),
        TRAIN_LABELS: Digest(
            archive="b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"
        ),
        TEST_IMAGES: Digest(
            archive="78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"
        ),
        TEST_LABELS: Digest(
            archive="42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"
        ),
    },
}

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


@dataclass(kw_only=True)
class MnistOptions(CommonOptions):
    """MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28 pixels.

    x: (N, 1, 28, 28) float32 (NCHW), or (N, 28, 28) with ``sequence`` (rows as time steps),
        kept as bytes and made float32 a batch at a time (``images.MappedImages``);
    y: (N,) int64 digit 0..9.
    scale defaults to "minmax", which here means pixel / 255 (the byte range, not data
        statistics), giving values in [0, 1].
    root: a directory holding the four IDX files (gzip or raw), searched first.
    limit: use only the first ``limit`` training images (before the validation split).
    test_limit: use only the first ``test_limit`` test images.
    sequence: give each image as a (28, 28) sequence of pixel rows, for recurrent models.
    download: fetch the files into the user cache when they are found nowhere.
    augment: random changes to each training batch (see ``bptrain.data.augment``).
    """

    task = "classification"

    scale: Scale = "minmax"
    root: str | None = None
    limit: int | None = None
    test_limit: int | None = None
    sequence: bool = False
    download: bool = True
    augment: list[dict] | None = None

    def footprint(self, source=None) -> Footprint:
        train = min(self.limit or TRAIN_SIZE, TRAIN_SIZE)
        images = train + min(self.test_limit or TEST_SIZE, TEST_SIZE)
        what = f"{images:,} images of 28x28 (limit: {self.limit}, test_limit: {self.test_limit})"
        return Footprint(images * PEAK_BYTES_PER_IMAGE, ("limit", "test_limit"), what)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("limit", self.limit)
        check_positive("test_limit", self.test_limit)
        if self.augment is not None:
            if self.sequence:
                raise ConfigError(
                    "data.augment changes images (N, C, H, W); with data.sequence the inputs "
                    "are sequences: drop one of the two"
                )
            parse_augment(self.augment, [28, 28])


@dataclass(kw_only=True)
class FashionMnistOptions(MnistOptions):
    """Fashion-MNIST (Zalando article images), a drop-in replacement for MNIST.

    Same files, shapes and options as ``mnist``; the 10 classes are clothing types
    ("T-shirt/top", "Trouser", ..., "Ankle boot"), kept in ``Dataset.class_names``.
    """


def load(
    name: str, opts: MnistOptions, seed: int, source: str | None = None, only_test: bool = False
) -> Dataset:
    """Load ``name`` ("mnist" or "fashion_mnist"); the validation split is left empty.

    source: the directory a run found the files in, searched after ``root`` and
        ``$BPTRAIN_DATA_DIR``. only_test: read the test files alone (the training arrays
        come back empty).
    """
    files = locate(name, opts.root, opts.download, source, TEST_FILES if only_test else FILES)
    if only_test:
        x_train, y_train = np.empty((0, 1, 28, 28), np.uint8), np.empty(0, np.int64)
    else:
        x_train, y_train = _read_pair(files[TRAIN_IMAGES], files[TRAIN_LABELS], opts.limit)
    x_test, y_test = _read_pair(files[TEST_IMAGES], files[TEST_LABELS], opts.test_limit)
    if opts.sequence:
        x_train, x_test = x_train[:, 0], x_test[:, 0]
    # The pixels stay bytes; each batch is made float32 (and scaled) as it is read: a float32
    # copy of the 60,000 images and of their split would be 400 MB written at start-up, 0.8 s
    # of a 20 s CNN run here (first-touched memory is slow to fault in on this VM).
    x_train, x_test = (MappedImages(x, np.arange(len(x))) for x in (x_train, x_test))
    extra = {"value_range": [0, 255]}
    ds = classification(name, x_train, y_train, x_test, y_test, CLASS_NAMES[name], extra)
    ds.source = str(files[TEST_IMAGES].parent.resolve())
    return ds


load_mnist = partial(load, "mnist")
load_fashion_mnist = partial(load, "fashion_mnist")


def search_dirs(name: str, root: str | None, source: str | None = None) -> list[Path]:
    """The directories searched for ``name``'s files, in order."""
    dirs = []
    if root:
        dirs.append(Path(os.path.expanduser(root)))
    if os.environ.get("BPTRAIN_DATA_DIR"):
        dirs.append(Path(os.path.expanduser(os.environ["BPTRAIN_DATA_DIR"])) / name)
    if source:
        dirs.append(Path(source))
    dirs.append(cache_dir(name))
    return dirs


def locate(
    name: str,
    root: str | None,
    allow_download: bool,
    source: str | None = None,
    needed: tuple[str, ...] = FILES,
) -> dict[str, Path]:
    """Paths of the ``needed`` files: from the first directory holding all of them, else
    downloaded into the cache."""
    dirs = search_dirs(name, root, source)
    for d in dirs:
        found = {stem: _find(d, stem) for stem in needed}
        if all(found.values()):
            return found
    cache = cache_dir(name)
    reason = "downloads are off (data.download: false)"
    if allow_download:
        try:
            for stem in needed:
                if _find(cache, stem) is None:
                    urls = [base + stem + ".gz" for base in MIRRORS[name]]
                    download(urls, cache / f"{stem}.gz", DIGESTS[name][stem])
            return {stem: _find(cache, stem) for stem in needed}
        except DataError as exc:
            reason = str(exc)
    names = ", ".join(f"{stem}.gz" for stem in needed)
    raise DataError(
        f"{name} files not found in {', '.join(str(d) for d in dirs)} and {reason}. "
        f"Put {names} (gzip or raw) in {cache}, or in DIR/{name}/ and set "
        f"BPTRAIN_DATA_DIR=DIR, or in the directory named by data.root"
    )


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _read_pair(images_path: Path, labels_path: Path, limit: int | None):
    """images: (N, 1, 28, 28) uint8 pixel values; labels: (N,) int64 in 0..9."""
    images = read_idx(images_path, ndim=3, limit=limit)
    labels = read_idx(labels_path, ndim=1, limit=limit)
    if images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_path} holds {images.shape[1]}x{images.shape[2]} images; "
            "MNIST-style images must be 28x28"
        )
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path} has {len(labels)} labels but {images_path} has "
            f"{len(images)} images; the two files must belong together"
        )
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(
            f"{labels_path} has label {labels[bad[0]]} at index {bad[0]}; labels must be 0..9"
        )
    return images.reshape(len(images), 1, 28, 28), labels.astype(np.int64)
