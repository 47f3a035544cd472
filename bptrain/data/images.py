"""Image folders: one sub-folder per class, PNG and JPEG files read through Pillow.

    data: {dataset: images, path: photos, image_size: [64, 64], color: rgb}

``photos/cat/*.png`` and ``photos/dog/*.jpg`` make the classes "cat" and "dog": the sub-folder
names sorted, a class's index its position there (the run stores them as ``class_names``);
images in deeper folders belong to the class folder above them. Every file is decoded once,
converted to ``color`` and resized to ``image_size``, into a cache: a uint8 (N, C, H, W) .npy
file and a JSON index in the user cache (``$XDG_CACHE_HOME/bptrain/images``, or
``data.cache_dir``) named by a digest of the folder, the files' names, sizes and modification
times, the size and the color, so a second run on the same files starts at once and any change
decodes again. The cache is written as a stream (one image in memory at a time) to a temporary
file that is renamed into place when complete.

Training reads the cache memory-mapped (``MappedImages``): the rows of a batch are read and
converted to float32 when the batch is drawn, so a folder larger than memory trains without
being loaded whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from bptrain.data.augment import parse as parse_augment
from bptrain.data.dataset import Dataset
from bptrain.data.download import cache_dir
from bptrain.data.npyfile import map_npy
from bptrain.data.options import CommonOptions, Footprint, Scale
from bptrain.errors import ConfigError, DataError
from bptrain.memory import format_bytes
from bptrain.nn.kernels import compiled as compiled_module
from bptrain.nn.kernels.compiled import compiled
from bptrain.runs.atomic import TEMP_SUFFIX, fsync_dir, write_text, writing

EXTENSIONS = (".png", ".jpg", ".jpeg")
CACHE_VERSION = 1
# Memory per image file while the folder is listed and its labels and indexes are held
# (measured with tracemalloc in bench/bench_images.py: about 400 bytes), with a margin.
BYTES_PER_FILE = 1024
_ROWS_PER_CHUNK = 4096
Color = Literal["grayscale", "rgb"]


@dataclass(kw_only=True)
class ImagesOptions(CommonOptions):
    """A folder of images with one sub-folder per class (the folder name is the label).

    path: the folder. test_path: an optional folder of test images laid out the same way
        (its classes must be among path's).
    image_size: [height, width] every image is resized to (bilinear).
    color: "grayscale" (1 channel) or "rgb" (3 channels).
    skip_bad_images: skip files Pillow cannot read, with a count, instead of stopping at the
        first with an error naming it.
    cache_dir: where the decoded images are cached (default: the user cache).
    augment: random changes to each training batch (see ``bptrain.data.augment``).
    x: (N, C, H, W) float32 pixel values (memory-mapped, see ``MappedImages``); y: (N,) int64.
    scale defaults to "minmax", which here means pixel / 255, giving values in [0, 1].
    """

    task = "classification"

    path: str
    test_path: str | None = None
    image_size: list[int] = field(default_factory=lambda: [32, 32])
    color: Color = "rgb"
    skip_bad_images: bool = False
    cache_dir: str | None = None
    scale: Scale = "minmax"
    augment: list[dict] | None = None

    def footprint(self, source=None) -> Footprint | None:
        try:
            count = sum(len(_list(Path(os.path.expanduser(p)))[1]) for p in self._paths(source))
        except DataError:
            return None  # the loader says what is missing
        return Footprint(
            count * BYTES_PER_FILE,
            ("path",),
            f"{count:,} image files (their pixels are memory-mapped, not loaded)",
        )

    def _paths(self, source=None) -> list[str]:
        return [str(folder(self.path, source))] + ([self.test_path] if self.test_path else [])

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ConfigError(
                f"data.image_size must be [height, width], two positive integers, got "
                f"{self.image_size}"
            )
        if self.augment is not None:
            parse_augment(self.augment, self.image_size)


def folder(path: str, source: str | None = None) -> Path:
    """The folder ``data.path`` names, or where a run found it before (``source``) when
    ``path`` is relative to another working directory or the folder moved."""
    configured = Path(os.path.expanduser(path))
    if source and not configured.exists() and Path(source).is_dir():
        return Path(source)
    return configured


def load_images(opts: ImagesOptions, seed: int, source: str | None = None) -> Dataset:
    """Load an image folder (and ``test_path``); the validation split is left empty."""
    root = folder(opts.path, source)
    classes, files = _list(root, "path")
    pixels, kept, skipped = cached(root, files, opts)
    labels = np.array([c for _, c in files], dtype=np.int64)
    x_train = MappedImages(pixels, kept)
    y_train = labels[kept]
    channels, (h, w) = pixels.shape[1], opts.image_size
    x_test, y_test = MappedImages(pixels, kept[:0]), y_train[:0]
    if opts.test_path:
        test_root = Path(os.path.expanduser(opts.test_path))
        test_classes, test_files = _list(test_root, "test_path")
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DataError(
                f"{test_root} has a class folder {unknown[0]!r} that {root} has not; the test "
                f"classes must be among the training ones ({', '.join(classes)})"
            )
        test_files = [(p, classes.index(test_classes[c])) for p, c in test_files]
        test_pixels, test_kept, test_skipped = cached(test_root, test_files, opts)
        x_test = MappedImages(test_pixels, test_kept)
        y_test = np.array([c for _, c in test_files], dtype=np.int64)[test_kept]
        skipped += test_skipped
    ds = Dataset(
        x_train=x_train,
        y_train=y_train,
        x_val=x_train.rows(kept[:0]),
        y_val=y_train[:0],
        x_test=x_test,
        y_test=y_test,
        task="classification",
        num_classes=len(classes),
        class_names=classes,
        input_shape=(channels, h, w),
        name=root.name,
        extra={"value_range": [0, 255]},
        source=str(root.resolve()),
    )
    if skipped:
        ds.extra["skipped_images"] = {"count": len(skipped), "first": skipped[0]}
    return ds


def image_files(path: Path) -> list[Path]:
    """The image files in a folder (sorted, sub-folders included), or the file itself."""
    if path.is_dir():
        return [p for p, _ in _files_under(path, path)]
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    return [path]


def read_images(paths: list[Path], image_size, color: str) -> np.ndarray:
    """(N, C, H, W) float32 raw pixel values (0..255) of image files, resized and converted
    as for training; a file Pillow cannot read is a DataError naming it."""
    h, w = image_size
    out = np.empty((len(paths), 1 if color == "grayscale" else 3, h, w), dtype=np.float32)
    for i, path in enumerate(paths):
        pixels, problem = decode(path, (h, w), color)
        if problem:
            raise DataError(f"{path} is not a readable image: {problem}")
        out[i] = pixels
    return out


# -- listing and decoding ---------------------------------------------------------------------
def _list(root: Path, key: str = "path") -> tuple[list[str], list[tuple[Path, int]]]:
    """(class names, [(file, class index)]) of an image folder."""
    if not root.is_dir():
        what = "no such folder" if not root.exists() else "not a folder"
        raise DataError(
            f"{root}: {what}; data.{key} names a folder with one sub-folder of images per class"
        )
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root} has no class folders; put each class's images in a sub-folder named after "
            f"the class ({root}/cat/1.png, {root}/dog/1.jpg, ...)"
        )
    files = []
    for index, name in enumerate(classes):
        found = [(p, index) for p, _ in _files_under(root / name, root)]
        if not found:
            raise DataError(f"{root / name} holds no {', '.join(EXTENSIONS)} images")
        files += found
    return classes, files


def _files_under(directory: Path, root: Path) -> list[tuple[Path, os.stat_result]]:
    """Image files under ``directory`` (hidden ones skipped), sorted, with their stat."""
    out = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in EXTENSIONS:
                continue
            path = Path(dirpath) / name
            out.append((path, path.stat()))
    return sorted(out, key=lambda item: item[0].relative_to(root).parts)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            "reading images needs Pillow, which is not installed: pip install bptrain[images]"
        ) from None
    return Image


def decode(path: Path, size: tuple[int, int], color: str) -> tuple[np.ndarray | None, str]:
    """((C, H, W) uint8 pixels, "") of an image file resized (bilinear) and converted, or
    (None, why) when Pillow cannot read it."""
    Image = _pillow()
    h, w = size
    mode = "L" if color == "grayscale" else "RGB"
    try:
        with Image.open(path) as img:
            img.draft(mode, (w, h))  # JPEG: decode at a reduced scale no smaller than (w, h)
            img = img.convert(mode)
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        return None, " ".join(str(exc).split()) or type(exc).__name__
    return (pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)), ""


# -- the cache --------------------------------------------------------------------------------
def cache_key(root: Path, files: list[tuple[Path, int]], opts: ImagesOptions) -> str:
    """A digest of what decides the cached pixels: the folder, each file's name, size and
    modification time, the image size and the color."""
    digest = hashlib.sha256()
    head = [CACHE_VERSION, str(root.resolve()), list(opts.image_size), opts.color]
    digest.update(json.dumps(head).encode())
    for path, _ in files:
        st = path.stat()
        digest.update(f"\n{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def cached(
    root: Path, files: list[tuple[Path, int]], opts: ImagesOptions
) -> tuple[np.memmap, np.ndarray, list[str]]:
    """(pixels (len(files), C, H, W) uint8 memory-mapped, indexes of the readable files,
    names of the unreadable ones), decoded now unless a cache of the same files exists."""
    where = Path(os.path.expanduser(opts.cache_dir)) if opts.cache_dir else cache_dir("images")
    key = cache_key(root, files, opts)
    pixels_path, index_path = where / f"{key}.npy", where / f"{key}.json"
    if not (index_path.is_file() and pixels_path.is_file()):
        with writing(where):
            where.mkdir(parents=True, exist_ok=True)
        bad = _decode_into(pixels_path, root, files, opts)
        write_text(index_path, json.dumps({"files": len(files), "bad": bad}))
    try:
        index = json.loads(index_path.read_text())
        bad = index["bad"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(
            f"{index_path} is damaged; delete it and {pixels_path.name} to decode again"
        ) from None
    if bad and not opts.skip_bad_images:
        path, problem = bad[0]
        raise DataError(
            f"{root / path} is not a readable image: {problem} (set data.skip_bad_images: true "
            "to skip such files)"
        )
    pixels = map_npy(pixels_path)
    if pixels.shape[0] != len(files) or pixels.dtype != np.uint8:
        raise DataError(f"{pixels_path} does not match {root}; delete it to decode again")
    bad_names = {name for name, _ in bad}
    kept = [i for i, (p, _) in enumerate(files) if str(p.relative_to(root)) not in bad_names]
    return pixels, np.array(kept, dtype=np.int64), [str(root / name) for name, _ in bad]


def _decode_into(path: Path, root: Path, files: list[tuple[Path, int]], opts) -> list:
    """Decode ``files`` (in the folder ``root``) into the .npy file ``path`` (written to a
    temporary file, fsynced and renamed); returns [[relative name, problem]] of those Pillow
    cannot read (zeros in the array). Without skip_bad_images the first one stops it with a
    DataError."""
    h, w = opts.image_size
    channels = 1 if opts.color == "grayscale" else 3
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    bad = []
    try:
        with writing(tmp), open(tmp, "wb") as f:
            header = {"descr": "|u1", "fortran_order": False, "shape": (len(files), channels, h, w)}
            np.lib.format.write_array_header_1_0(f, header)
            zeros = bytes(channels * h * w)
            for file, _ in files:
                pixels, problem = decode(file, (h, w), opts.color)
                if problem:
                    name = str(file.relative_to(root))
                    if not opts.skip_bad_images:
                        raise DataError(
                            f"{file} is not a readable image: {problem} (set "
                            "data.skip_bad_images: true to skip such files)"
                        )
                    bad.append([name, problem])
                    f.write(zeros)
                else:
                    f.write(np.ascontiguousarray(pixels).tobytes())
            f.flush()
            os.fsync(f.fileno())
        with writing(path):
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
    return bad


# -- memory-mapped rows -----------------------------------------------------------------------
AHEAD, LINE = 4, 64  # rows whose pixels are asked for ahead; bytes in a cache line
_prefetch = None  # compiled.prefetcher(), bound (by ``_rows_loop``) before the loop is compiled


def _scaled_rows_loop(pixels, index, shift, divisor, out):
    """out[i] = (pixels[index[i]] - shift) / divisor in float32 (the bits of NumPy's calls in
    ``MappedImages``): pixels (M, D) uint8, out (N, D); a batch in one compiled pass, 6.8 against
    12 us for the MNIST MLP's 32 rows (in cache), where the step takes about 200. A training
    order reads rows scattered over the whole set, out of cache: while row i is converted, the
    cache lines of row i + AHEAD are asked for (``compiled.prefetcher``), so that their reads
    from memory overlap (11.5 against 7.5 us for 32 random MNIST rows)."""
    s, d = np.float32(shift), np.float32(divisor)
    n, width = len(index), pixels.shape[1]
    for i in range(-AHEAD, n):
        if i + AHEAD < n:
            ahead = pixels[index[i + AHEAD]]
            for j in range(0, width, LINE):
                _prefetch(ahead, j)
        if i >= 0:
            row, o = pixels[index[i]], out[i]
            for j in range(len(o)):
                o[j] = (np.float32(row[j]) - s) / d


def _rows_loop():
    """``_scaled_rows_loop`` compiled, its prefetch hint bound first (None without Numba)."""
    global _prefetch
    if _prefetch is None:
        _prefetch = compiled_module.prefetcher()
    return None if _prefetch is None else compiled(_scaled_rows_loop)


class MappedImages:
    """The (N, C, H, W) float32 array ``(pixels[rows] - shift) / divisor``, read a few rows
    at a time from a memory-mapped uint8 cache.

    pixels: (M, C, H, W) uint8, read-only; rows: (N,) int64 indexes into it. Where training
    code reads arrays it behaves as one: ``len(x)``, ``x.shape``, ``x[a:b]``, ``x[idx]`` (any
    index, the rows first) and ``np.take(x, idx, axis=0)`` give float32 arrays of just those
    rows; ``x.rows(idx)`` is a
    subset that stays mapped (the validation split); ``x -= s`` and ``x /= d`` (how
    ``bptrain.data.preprocess.scale`` scales in place) change the map, never the file.
    ``nbytes`` is what it holds in memory (see there).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, pixels: np.ndarray, rows: np.ndarray, shift=0.0, divisor=1.0):
        self.pixels, self.index = pixels, np.asarray(rows, dtype=np.int64)
        # one row per line, for the compiled pass (a view)
        self._flat = np.asarray(pixels).reshape(len(pixels), int(np.prod(pixels.shape[1:])))
        self._scale(np.asarray(shift, dtype=np.float32), np.asarray(divisor, dtype=np.float32))

    def _scale(self, shift: np.ndarray, divisor: np.ndarray) -> None:
        """Set the statistics, and what a batch's read needs of them: whether there is a shift
        (NumPy's calls skip it if not), and both as numbers when there is one of each (the
        compiled pass takes them so)."""
        self.shift, self.divisor = shift, divisor
        self._shifted = bool(shift.any())
        single = shift.size == 1 and divisor.size == 1
        self._scalars = (shift.item(), divisor.item()) if single else None

    @property
    def shape(self) -> tuple:
        return (len(self.index), *self.pixels.shape[1:])

    @property
    def ndim(self) -> int:
        return self.pixels.ndim

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """The memory it holds: its row indexes and, unless the pixels are mapped from a file
        (an image folder's cache is; MNIST's are read into memory), its rows' share of them (so
        a training and a validation split of one array add up to the array)."""
        if isinstance(self.pixels, np.memmap):
            return self.index.nbytes
        share = self.pixels.nbytes * len(self.index) // max(len(self.pixels), 1)
        return self.index.nbytes + share

    def __len__(self) -> int:
        return len(self.index)

    def rows(self, indexes) -> MappedImages:
        """The rows at ``indexes``, still mapped."""
        return MappedImages(self.pixels, self.index[indexes], self.shift, self.divisor)

    def take(self, indices, axis=0, out=None, mode="raise") -> np.ndarray:
        if axis != 0 or out is not None:
            raise ValueError("MappedImages.take takes rows (axis=0) into a new array")
        return self._read(self.index[np.asarray(indices)])

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):  # the rows first, then the rest of the key on them
            first, rest = (key[0], key[1:]) if key else (slice(None), ())
            if isinstance(first, int | np.integer):
                return self[first][rest]
            return self[first][(slice(None), *rest)]
        if isinstance(key, int | np.integer):
            return self[[key]][0]
        return self._read(self.index[key])

    def _read(self, index) -> np.ndarray:
        """The float32 rows at ``index`` (positions in ``pixels``), scaled."""
        big = self.pixels.size >= compiled_module.MIN_SIZE  # (worth Numba's import)
        loop = _rows_loop() if big and self._scalars and len(index) else None
        if loop is not None:  # a batch's rows in one pass
            out = np.empty((len(index), *self.pixels.shape[1:]), dtype=np.float32)
            loop(self._flat, index, *self._scalars, out.reshape(len(index), -1))
            return out
        rows = self.pixels[index]
        # One call each (a batch's rows are few, so calls dominate): (rows - shift) / divisor in
        # float32, or rows / divisor when there is no shift, the same bits.
        if self._shifted:
            x = np.subtract(rows, self.shift, dtype=np.float32)
            x /= self.divisor
            return x
        return np.divide(rows, self.divisor, dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        x = self[:]
        return x if dtype is None else x.astype(dtype)

    def __isub__(self, shift) -> MappedImages:
        shift = (self.shift + np.asarray(shift, np.float32) * self.divisor).astype(np.float32)
        self._scale(shift, self.divisor)
        return self

    def __itruediv__(self, divisor) -> MappedImages:
        self._scale(self.shift, (self.divisor * np.asarray(divisor, np.float32)).astype(np.float32))
        return self

    def mean(self, axis=None, dtype=None, keepdims=False) -> np.ndarray:
        """The mean over ``axis`` (which must include the rows), a chunk of rows at a time."""
        axes = tuple(range(self.ndim)) if axis is None else tuple(np.atleast_1d(axis))
        if 0 not in axes:
            raise ValueError("MappedImages.mean reduces over the rows (axis 0)")
        total = 0.0
        for start in range(0, len(self), _ROWS_PER_CHUNK):
            chunk = self[start : start + _ROWS_PER_CHUNK].astype(dtype or np.float64)
            total = total + chunk.sum(axis=axes, keepdims=True)
        count = int(np.prod([self.shape[a] for a in axes]))
        mean = np.asarray(total, dtype=dtype or np.float64) / max(count, 1)
        return mean if keepdims else np.squeeze(mean, axis=axes)

    def __repr__(self) -> str:
        return f"MappedImages({len(self)} of {format_bytes(self.pixels.nbytes)} mapped)"
