"""The one atomic write: a file is whole or absent, with ordinary permissions, and no temporary left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onnxviz.core.files import TEMPORARY_PREFIX, write_atomically


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_atomically(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_the_file_gets_ordinary_permissions_under_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_atomically(tmp_path / "out.bin", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o644


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a folder in the way of the target name: the rename fails
    with pytest.raises(OSError):
        write_atomically(target, b"data")
    assert target.is_dir()
    assert not any(p.name.startswith(TEMPORARY_PREFIX) for p in tmp_path.iterdir())


def test_a_commands_files_are_written_all_together_or_not_at_all(tmp_path) -> None:
    from onnxviz.errors import UsageError
    from onnxviz.render.outputs import all_or_nothing, write_bytes

    (tmp_path / "a.bin").write_bytes(b"earlier")
    with pytest.raises(KeyboardInterrupt), all_or_nothing():
        write_bytes(tmp_path / "a.bin", b"new")
        write_bytes(tmp_path / "made" / "deep" / "b.bin", b"new")
        assert (tmp_path / "a.bin").read_bytes() == b"earlier"  # staged, not yet in place
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"] and (tmp_path / "a.bin").read_bytes() == b"earlier"

    (tmp_path / "c.bin").mkdir()  # a folder in the way of the second name
    with pytest.raises(UsageError, match="a folder of that name is in the way"), all_or_nothing():
        write_bytes(tmp_path / "a.bin", b"new")
        write_bytes(tmp_path / "c.bin", b"new")
        write_bytes(tmp_path / "d.bin", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "c.bin"]  # no temporary, no d.bin
    assert (tmp_path / "a.bin").read_bytes() == b"earlier"

    with all_or_nothing():
        write_bytes(tmp_path / "e.bin", b"whole")
        write_bytes(tmp_path / "f.bin", b"at once", now=True)
        assert (tmp_path / "f.bin").exists() and not (tmp_path / "e.bin").exists()
    assert (tmp_path / "e.bin").read_bytes() == b"whole"
