"""The folder media store: content-addressed, idempotent, never a path outside its folder."""
from __future__ import annotations

import hashlib
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.media import FolderMediaStore, MediaMissing, check_key


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=4096))
def test_what_goes_in_comes_out_under_its_sha256(tmp_path_factory, data):
    store = FolderMediaStore(tmp_path_factory.mktemp("m"))
    key = store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert store.exists(key) and store.get(key) == data
    assert store.put(data) == key  # the same bytes again: the same key, one file
    assert [p for p in store.root.rglob("*") if p.is_file()] == [store.path(key)]


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "ab", "A" * 64, "g" * 64, "0" * 63 + "/",
                                 "0" * 65, "", "0" * 62 + "\x00\x00"])
def test_a_key_that_is_not_a_sha256_never_reaches_the_file_system(tmp_path, key):
    store = FolderMediaStore(tmp_path)
    for call in (store.get, store.exists, store.path):
        with pytest.raises(ValueError):
            call(key)
    with pytest.raises(ValueError):
        check_key(key)


def test_a_missing_key_is_media_missing(tmp_path):
    store = FolderMediaStore(tmp_path)
    with pytest.raises(MediaMissing):
        store.get("0" * 64)
    assert not store.exists("0" * 64)


def test_concurrent_writers_of_the_same_photo_leave_one_whole_file_and_no_temporaries(tmp_path):
    store = FolderMediaStore(tmp_path)
    data = bytes(range(256)) * 4000  # 1 MB
    keys = []
    threads = [threading.Thread(target=lambda: keys.append(store.put(data))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and store.get(keys[0]) == data
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [keys[0]]
