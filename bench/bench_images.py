"""Image folders: decode-and-cache throughput, the cache's speed-up, and the memory a run takes
while it reads every batch from the memory-mapped cache.

Writes ``--images`` random PNGs of ``--size`` pixels (RGB, 10 class folders) into a temporary
folder, then measures with ``load_dataset`` as ``bptrain fit`` calls it:

- the first load: list, decode (Pillow), write the cache (images/s);
- the second load: the cache found by its key and memory-mapped (seconds);
- the peak of memory allocations (tracemalloc, which counts NumPy's arrays) during a third
  load and one epoch of batches of 64 in a shuffled order, against the size of the whole
  training set as float32: what loading it whole would take.

    python -m bench.bench_images [--images N] [--size S]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from bptrain.data import iterate_minibatches, load_dataset
from bptrain.memory import format_bytes


def write_pngs(root: Path, count: int, size: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")
        write_pngs(tmp / "photos", args.images, args.size)
        spec = {
            "dataset": "images",
            "path": str(tmp / "photos"),
            "image_size": [args.size, args.size],
            "validation_split": 0.1,
        }
        started = time.perf_counter()
        load_dataset(spec)
        first = time.perf_counter() - started

        started = time.perf_counter()
        load_dataset(spec)
        second = time.perf_counter() - started
        tracemalloc.start()
        data = load_dataset(spec)
        after_load = tracemalloc.get_traced_memory()[1]
        order = np.random.default_rng(0).permutation(len(data.x_train))
        for _ in iterate_minibatches(data.x_train, data.y_train, 64, order):
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        whole = len(data.x_train) * int(np.prod(data.input_shape)) * 4
        cache = sum(p.stat().st_size for p in (tmp / "cache").rglob("*.npy"))
    print(f"{args.images} PNGs of {args.size}x{args.size} RGB, 10 classes")
    print(f"first load (list, decode, cache): {first:.2f} s = {args.images / first:.0f} images/s")
    print(f"second load (cache, memory-mapped): {second * 1e3:.0f} ms")
    print(f"cache file: {format_bytes(cache)} (uint8)")
    print(
        f"peak allocations, a load from the cache: {format_bytes(after_load)} "
        f"({after_load / args.images:.0f} bytes per image file)"
    )
    print(
        f"peak allocations, that load + one epoch of batches of 64: {format_bytes(peak)}, "
        f"against {format_bytes(whole)} for the training set as float32"
    )


if __name__ == "__main__":
    main()
