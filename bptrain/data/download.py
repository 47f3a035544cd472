"""Verified, atomic downloads into the user cache.

A file is fetched to a temporary file next to its destination, checked against a SHA-256
digest, flushed to disk and only then renamed into place, so a failed or interrupted
download never leaves a partial file under the real name.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from bptrain.errors import DataError
from bptrain.runs.atomic import fsync_dir

TIMEOUT_S = 30.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Digest:
    """The SHA-256 a downloaded file must have (hex, lower case).

    ``content`` is the digest of the uncompressed bytes (gzip wrappers differ between mirrors,
    the content does not). It may be a prefix of the full digest; then only the prefix is
    compared. ``archive`` is the digest of the file exactly as served, for datasets whose
    content digest we do not know. At least one of the two must be given.
    """

    content: str | None = None
    archive: str | None = None


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/bptrain/<name>``, or ``~/.cache/bptrain/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bptrain" / name


def download(urls: list[str], dest: Path, digest: Digest) -> None:
    """Fetch the first of ``urls`` that answers with the right digest into ``dest``.

    Raises DataError listing what went wrong with each URL when none succeeds.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                    shutil.copyfileobj(response, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            problem = _check(Path(tmp), digest)
            if problem is None:
                os.replace(tmp, dest)
                fsync_dir(dest.parent)
                return
            failures.append(f"{url}: {problem}")
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            failures.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DataError(f"could not download {dest.name}: " + "; ".join(failures))


def _check(path: Path, digest: Digest) -> str | None:
    """None when ``path`` matches ``digest``, else what is wrong."""
    if digest.content is not None:
        actual = _sha256(path, uncompress=True)
        expected = digest.content
    else:
        actual = _sha256(path, uncompress=False)
        expected = digest.archive
    # A prefix digest compares only as many hex digits as we know.
    if actual.startswith(expected.lower()):
        return None
    return f"SHA-256 mismatch (expected {expected}..., got {actual[: len(expected)]}...)"


def _sha256(path: Path, uncompress: bool) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as raw:
        gzipped = uncompress and raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw) if gzipped else raw
        try:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        except (EOFError, zlib.error) as exc:
            raise ValueError(f"not a valid gzip file ({exc})") from exc
    return h.hexdigest()
