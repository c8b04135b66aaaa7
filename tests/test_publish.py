"""The publisher on real directories: layout, modes, links, idempotence, clean-up."""

from __future__ import annotations

import errno
import os
import random
import stat
from pathlib import Path

import pytest

from sidecar.errors import PublishError
from sidecar.publish import DATA_LINK, GENERATION_RE, Publisher, dir_mode_for

FILES = {"access_key_id": b"AKIA1", "secret_access_key": b"s1", "session_token": b"t1", "expiration": b"2026-12-03T13:00:00Z"}
FILES2 = {"access_key_id": b"AKIA2", "secret_access_key": b"s2", "session_token": b"t2", "expiration": b"2026-12-03T14:00:00Z"}


def generations(root: Path) -> list[str]:
    return sorted(e for e in os.listdir(root) if GENERATION_RE.fullmatch(e))


def read_visible(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in FILES}


@pytest.fixture
def pub(tmp_path: Path) -> Publisher:
    p = Publisher(tmp_path / "out", rng=random.Random(1))
    p.prepare()
    return p


def test_layout_modes_and_relative_links(pub: Publisher) -> None:
    result = pub.publish(FILES)
    root = pub.root
    assert result.changed and GENERATION_RE.fullmatch(result.generation)
    assert os.readlink(root / DATA_LINK) == result.generation  # relative
    for name, content in FILES.items():
        assert os.readlink(root / name) == f"{DATA_LINK}/{name}"  # relative
        assert (root / name).read_bytes() == content
        st = os.stat(root / result.generation / name)
        assert stat.S_IMODE(st.st_mode) == 0o440
    assert stat.S_IMODE(os.stat(root / result.generation).st_mode) == 0o750
    assert sorted(os.listdir(root)) == sorted([DATA_LINK, result.generation, *FILES])


def test_links_survive_moving_the_volume(pub: Publisher, tmp_path: Path) -> None:
    """The app may mount the volume at another path: links must be relative."""
    pub.publish(FILES)
    moved = tmp_path / "elsewhere"
    os.rename(pub.root, moved)
    assert read_visible(moved) == FILES


def test_swap_replaces_set_and_removes_old_generation(pub: Publisher) -> None:
    first = pub.publish(FILES)
    second = pub.publish(FILES2)
    assert second.generation != first.generation
    assert read_visible(pub.root) == FILES2
    assert generations(pub.root) == [second.generation]
    assert not (pub.root / "..data_tmp").exists()


def test_republishing_identical_set_skips_the_swap(pub: Publisher) -> None:
    first = pub.publish(FILES)
    again = pub.publish(dict(FILES))
    assert not again.changed and again.generation == first.generation
    assert generations(pub.root) == [first.generation]


def test_republish_restores_a_missing_visible_link(pub: Publisher) -> None:
    pub.publish(FILES)
    os.unlink(pub.root / "session_token")
    assert not pub.publish(FILES).changed
    assert (pub.root / "session_token").read_bytes() == b"t1"


def test_names_dropped_from_the_set_lose_their_link(pub: Publisher) -> None:
    pub.publish({**FILES, "extra": b"x"})
    pub.publish(FILES2)
    assert not os.path.lexists(pub.root / "extra")


@pytest.mark.parametrize("mode, dmode", [(0o400, 0o700), (0o440, 0o750), (0o444, 0o755), (0o640, 0o750)])
def test_file_mode_is_explicit_not_umask(tmp_path: Path, mode: int, dmode: int) -> None:
    old = os.umask(0o077)
    try:
        p = Publisher(tmp_path / "o", file_mode=mode)
        p.prepare()
        gen = p.publish(FILES).generation
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(p.root / gen / "access_key_id").st_mode) == mode
    assert stat.S_IMODE(os.stat(p.root / gen).st_mode) == dmode == dir_mode_for(mode)


def test_prepare_creates_out_and_removes_crash_debris(tmp_path: Path) -> None:
    p = Publisher(tmp_path / "out", rng=random.Random(2))
    p.prepare()
    live = p.publish(FILES).generation
    # A crash mid-publish leaves a half-written generation and a dangling ..data_tmp.
    half = p.root / "..2026_01_01_00_00_00.deadbeef"
    half.mkdir()
    (half / "access_key_id").write_bytes(b"AKIA-half")
    os.symlink(half.name, p.root / "..data_tmp")
    (p.root / "unrelated-file").write_text("keep me")
    assert Publisher(p.root).prepare() == live
    assert sorted(os.listdir(p.root)) == sorted([DATA_LINK, live, *FILES, "unrelated-file"])
    assert read_visible(p.root) == FILES


def test_failure_before_commit_keeps_old_set_and_leaves_nothing(tmp_path: Path) -> None:
    def explode(step: str) -> None:
        if step == "write":
            raise OSError(errno.ENOSPC, "No space left on device")

    p = Publisher(tmp_path / "out")
    p.prepare()
    old = p.publish(FILES).generation
    p.on_step = explode
    with pytest.raises(PublishError, match="no space left on device"):
        p.publish(FILES2)
    assert read_visible(p.root) == FILES
    assert generations(p.root) == [old]
    assert not os.path.lexists(p.root / "..data_tmp")


def test_refuses_a_symlinked_out_dir(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "out").symlink_to(real)
    with pytest.raises(PublishError, match="is a symlink"):
        Publisher(tmp_path / "out").prepare()
    assert os.listdir(real) == []


@pytest.mark.parametrize("planted", ["file", "foreign-link"])
def test_refuses_to_replace_an_entry_it_did_not_create(pub: Publisher, tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = pub.root / "secret_access_key"
    if planted == "file":
        target.write_bytes(b"someone else's")
    else:
        target.symlink_to(victim)
    with pytest.raises(PublishError, match="not vend-sidecar's link"):
        pub.publish(FILES)
    assert victim.read_bytes() == b"precious"
    assert not os.path.lexists(pub.root / DATA_LINK)


def test_refuses_a_foreign_data_link(pub: Publisher, tmp_path: Path) -> None:
    pub.publish(FILES)
    os.unlink(pub.root / DATA_LINK)
    os.symlink(str(tmp_path), pub.root / DATA_LINK)
    with pytest.raises(PublishError, match="not a vend-sidecar generation"):
        pub.publish(FILES2)


@pytest.mark.parametrize("name", ["../escape", "..data", "a/b", "", ".hidden/x"])
def test_refuses_unsafe_file_names(pub: Publisher, name: str) -> None:
    with pytest.raises(PublishError, match="refusing to publish"):
        pub.publish({name: b"x"})


def test_out_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("x")
    with pytest.raises(PublishError, match="not a directory"):
        Publisher(tmp_path / "out").prepare()
