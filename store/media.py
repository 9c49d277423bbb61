"""The media store: report photos by content hash (sha256), in a folder by default.

Content addressing makes a write idempotent (the same photo twice is stored once) and a
key safe to put in a URL. The interface is small so that an S3-compatible store can take
the folder's place: put, get, exists.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

_KEY = re.compile(r"[0-9a-f]{64}")


class MediaMissing(KeyError):
    """No media with this key in the store."""


def media_key(data: bytes) -> str:
    """The key of `data`: its sha256, as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """`key` if it is a sha256 in hex; ValueError otherwise (nothing else may reach a path or a bucket)."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):  # match() with $ would let "…\n" through
        raise ValueError(f"not a media key: {key!r}")
    return key


class MediaStore(ABC):
    """Where the bytes of report photos live, by key."""

    @abstractmethod
    def put(self, data: bytes) -> str:
        """Store `data` (once per content) and return its key."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; MediaMissing if none."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether `key` is stored."""


class FolderMediaStore(MediaStore):
    """Files under a folder, fanned out by the key's first digits: root/ab/cd/abcd…"""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """The file of `key`."""
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        """Write to a temporary file in the target folder, then rename: a reader never sees half a photo."""
        key = media_key(data)
        target = self.path(key)
        if target.is_file():
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        """The file's bytes."""
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise MediaMissing(key) from None

    def exists(self, key: str) -> bool:
        """Whether the file is there."""
        return self.path(key).is_file()
