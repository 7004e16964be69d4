"""An output folder on a full or read-only filesystem: one clear error, and the earlier outputs intact.

Where the tests run as root and may mount, the folders are real small tmpfs mounts (one filled to
the last byte, one remounted read-only). Elsewhere they are as real as an unprivileged process
gets: the full disk is the file-size limit (``RLIMIT_FSIZE``, with SIGXFSZ ignored, so a write past
it fails with EFBIG as on a full disk) set in the command's own process, and the read-only folder
is one without write permission. Each command is run as a user runs it, in a subprocess.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DEMO, ROOT

PICTURE = DEMO.parent / "images" / "chelsea.png"
FILE_LIMIT = 4_000  # bytes: an occlusion's raw map (3.5 kB) fits, its picture does not


def _mount(folder: Path, *options: str) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], capture_output=True)


def onnxviz(*args: object, file_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    command = [sys.executable, "-c", "from onnxviz.cli import main; main()", *map(str, args)]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, preexec_fn=limit if file_limit else None, timeout=300
    )


def _earlier_outputs(folder: Path) -> dict[str, bytes]:
    done = onnxviz("project", DEMO, PICTURE, "--node", "conv2", "--out", folder / "p.png", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    (folder / "o.npy").write_bytes(b"an earlier run's raw map")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture
def full(tmp_path) -> Iterator[tuple[Path, int | None]]:
    """(a folder with earlier outputs and no room left, the file-size limit to run under or None)."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = _mount(folder, "size=256k")
    try:
        _earlier_outputs(folder)
        if mounted:
            with pytest.raises(OSError), (folder / "filler").open("wb") as handle:  # to the last block
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
        yield folder, None if mounted else FILE_LIMIT
    finally:
        if mounted:
            _unmount(folder)


@pytest.fixture
def read_only(tmp_path) -> Iterator[Path]:
    folder = tmp_path / "read_only"
    folder.mkdir()
    mounted = _mount(folder, "size=1m")
    if not mounted and os.geteuid() == 0:
        pytest.skip("root without the right to mount: no folder is read-only to root here")
    try:
        _earlier_outputs(folder)
        if mounted:
            assert subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True).returncode == 0
        else:
            folder.chmod(0o555)
        yield folder
    finally:
        if mounted:
            _unmount(folder)
        else:
            folder.chmod(0o755)


def _one_paragraph(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("onnxviz:")]


def test_a_full_disk_is_a_clear_error_and_leaves_earlier_outputs_intact(full) -> None:
    folder, file_limit = full
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "filler"}
    args = ("occlude", DEMO, PICTURE, "--patch", "8", "--stride", "2", "--device", "cpu")
    done = onnxviz(*args, "--out", folder / "p.png", "--raw", folder / "o.npy", file_limit=file_limit)
    lines = _one_paragraph(done.stderr)
    assert done.returncode == 2 and lines[0].startswith("error: Cannot write") and len(lines) == 1, done.stderr
    assert "No space left on device" in lines[0] or "File too large" in lines[0]
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "filler"}
    assert after == before  # both files as the earlier runs left them: none replaced, no temporary left


def test_a_read_only_folder_is_a_clear_error_and_leaves_earlier_outputs_intact(read_only) -> None:
    before = {p.name: p.read_bytes() for p in read_only.iterdir()}
    for args in (
        ("project", DEMO, PICTURE, "--node", "conv2", "--out", read_only / "p.png", "--device", "cpu"),
        ("topk", DEMO, DEMO.parent / "images", "--node", "conv1", "--top", "2", "--out", read_only / "topk"),
        ("invert", DEMO, "--node", "conv2", "--out-dir", read_only / "inverted"),
    ):
        done = onnxviz(*args)
        lines = _one_paragraph(done.stderr)
        assert done.returncode == 2 and lines[0].startswith("error: Cannot") and len(lines) == 1, done.stderr
        assert "Read-only file system" in lines[0] or "Permission denied" in lines[0]
    assert {p.name: p.read_bytes() for p in read_only.iterdir()} == before
