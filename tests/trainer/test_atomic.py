"""trainer.atomic: a failed write leaves neither a partial file nor a temporary one."""

from __future__ import annotations

import errno

import pytest

from trainer.atomic import atomic_write
from trainer.errors import InputError


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "a.json"
    with atomic_write(target, "w") as f:
        f.write("one")
    target.chmod(0o600)
    with atomic_write(target, "w") as f:
        f.write("two")
    assert target.read_text() == "two"
    assert target.stat().st_mode & 0o777 == 0o600  # a replaced file keeps its mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_full_disk_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "b.bin"
    target.write_bytes(b"old")
    with pytest.raises(InputError) as info:
        with atomic_write(target, what="the map") as f:
            f.write(b"new")
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(info.value)
    assert "b.bin" in message and "No space left on device" in message and "the map" in message
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin"]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="folder does not exist"):
        with atomic_write(tmp_path / "nope" / "c.txt", "w") as f:
            f.write("x")
