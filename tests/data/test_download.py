import functools
import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest

from bptrain.data import download as download_module
from bptrain.data import load_dataset, mnist
from bptrain.data.download import Digest, download
from bptrain.errors import DataError

from .conftest import write_mnist_dir


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/served; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _content_digests(arrays_dir) -> dict:
    return {
        stem: Digest(
            content=hashlib.sha256(gzip.open(arrays_dir / f"{stem}.gz").read()).hexdigest()
        )
        for stem in mnist.FILES
    }


def test_download_with_good_checksums_fills_the_cache(tmp_path, server, monkeypatch):
    base, served = server
    arrays = write_mnist_dir(served, n_train=15, n_test=5)
    monkeypatch.setattr(mnist, "MIRRORS", {"mnist": [base]})
    monkeypatch.setattr(mnist, "DIGESTS", {"mnist": _content_digests(served)})

    ds = load_dataset({"dataset": "mnist", "scale": "none"})

    cache = tmp_path / "xdg-cache" / "bptrain" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in mnist.FILES)
    np.testing.assert_array_equal(ds.y_train, arrays[mnist.TRAIN_LABELS])
    np.testing.assert_array_equal(ds.x_test[:, 0], arrays[mnist.TEST_IMAGES])
    # Found in the cache now: a second load needs no server.
    monkeypatch.setattr(mnist, "MIRRORS", {"mnist": []})
    assert len(load_dataset({"dataset": "mnist"}).x_train) == 15


def test_bad_checksum_leaves_no_file(tmp_path, server, monkeypatch):
    base, served = server
    write_mnist_dir(served)
    digests = _content_digests(served)
    digests[mnist.TRAIN_LABELS] = Digest(content="00" * 32)
    monkeypatch.setattr(mnist, "MIRRORS", {"mnist": [base]})
    monkeypatch.setattr(mnist, "DIGESTS", {"mnist": digests})

    with pytest.raises(DataError) as err:
        load_dataset({"dataset": "mnist"})
    message = str(err.value)
    assert "train-labels-idx1-ubyte.gz" in message and "SHA-256 mismatch" in message
    assert "BPTRAIN_DATA_DIR" in message
    cache = tmp_path / "xdg-cache" / "bptrain" / "mnist"
    # The file fetched before the bad one stays (it was verified); nothing partial remains.
    assert [p.name for p in cache.iterdir()] == ["train-images-idx3-ubyte.gz"]


def test_content_digest_ignores_the_gzip_wrapper_and_may_be_a_prefix(tmp_path):
    payload = b"\x00\x00\x08\x01\x00\x00\x00\x02\x05\x07"
    (tmp_path / "a.gz").write_bytes(gzip.compress(payload, mtime=123))
    full = hashlib.sha256(payload).hexdigest()
    download([(tmp_path / "a.gz").as_uri()], tmp_path / "out" / "a.gz", Digest(content=full[:16]))
    assert gzip.decompress((tmp_path / "out" / "a.gz").read_bytes()) == payload


def test_archive_digest_checks_the_bytes_as_served(tmp_path):
    data = gzip.compress(b"content", mtime=0)
    (tmp_path / "f.gz").write_bytes(data)
    good = Digest(archive=hashlib.sha256(data).hexdigest())
    download([(tmp_path / "f.gz").as_uri()], tmp_path / "out" / "f.gz", good)
    assert (tmp_path / "out" / "f.gz").read_bytes() == data
    bad = Digest(archive=hashlib.sha256(b"content").hexdigest())
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        download([(tmp_path / "f.gz").as_uri()], tmp_path / "out2" / "f.gz", bad)
    assert list((tmp_path / "out2").iterdir()) == []


def test_falls_back_to_the_next_mirror(tmp_path, server):
    base, served = server
    (served / "x.gz").write_bytes(gzip.compress(b"payload"))
    digest = Digest(content=hashlib.sha256(b"payload").hexdigest())
    download([base + "missing/x.gz", base + "x.gz"], tmp_path / "out" / "x.gz", digest)
    assert gzip.decompress((tmp_path / "out" / "x.gz").read_bytes()) == b"payload"


def test_interrupted_download_leaves_no_partial_file(tmp_path, server, monkeypatch):
    base, served = server
    (served / "x.gz").write_bytes(gzip.compress(bytes(100_000)))

    def broken_copy(src, dst, length=0):
        dst.write(src.read(1000))
        raise OSError("connection reset")

    monkeypatch.setattr(download_module.shutil, "copyfileobj", broken_copy)
    with pytest.raises(DataError, match="connection reset"):
        download([base + "x.gz"], tmp_path / "out" / "x.gz", Digest(content="ab"))
    assert list((tmp_path / "out").iterdir()) == []
