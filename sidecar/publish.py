"""Atomic, durable publication of one credential set (kubelet's AtomicWriter, plus fsync).

Layout (contract v1, "Published files")::

    OUT/..data -> ..2026_12_03_13_00_00.1a2b3c4d     relative symlink, the commit point
    OUT/..2026_12_03_13_00_00.1a2b3c4d/<file>        one complete set, never modified
    OUT/<file> -> ..data/<file>                      relative visible links

Publish steps, in order (``Publisher.on_step`` is called after each, by name):

1. ``validate``  open OUT without following a link; check that ``..data`` and every
   visible name are absent or exactly the links this program makes. Anything else
   (a regular file, a link pointing elsewhere) is refused: never write through a link
   we did not create.
2. ``compare``   read the live generation; if it holds exactly the new bytes, make
   sure the visible links exist and stop (no swap).
3. ``mkdir``     make the new hidden generation directory (``O_EXCL`` semantics).
4. ``write``     write every file with ``O_CREAT|O_EXCL|O_NOFOLLOW``, explicit
   ``fchmod``, ``fsync``; then ``fsync`` the generation directory.
5. ``link_tmp``  create ``..data_tmp -> <generation>``.
6. ``rename``    ``rename(..data_tmp, ..data)``, then ``fsync(OUT)``. The only commit
   point: before it readers see the old set, after it the new one.
7. ``links``     create missing visible links, remove stale ones, ``fsync(OUT)``.
8. ``cleanup``   remove the previous generation directory, ``fsync(OUT)``.

A failure before step 6 removes ``..data_tmp`` and the new directory, so the old set
stays live and nothing half-written remains. A crash at any point leaves either the
old or the new complete set behind ``..data``; :meth:`Publisher.prepare` removes
the debris (``..data_tmp``, unreferenced generation directories) at the next start.
kubelet never fsyncs; this does, so the guarantee survives power loss too.

Everything is done relative to a directory file descriptor opened with
``O_NOFOLLOW``, so a symlink planted in place of OUT or of an entry is never
followed. Calls block (fsync): the loop runs :meth:`publish` in a worker thread.
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import stat
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterator

from .errors import PublishError

__all__ = ["DATA_LINK", "GENERATION_RE", "PublishResult", "Publisher", "dir_mode_for"]

DATA_LINK = "..data"
TMP_LINK = "..data_tmp"
GENERATION_RE = re.compile(r"\.\.\d{4}(?:_\d\d){5}\.[0-9a-f]{8}")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def dir_mode_for(file_mode: int) -> int:
    """Generation directory mode: owner rwx, plus r-x wherever the files grant read."""
    readers = file_mode & 0o044
    return 0o700 | readers | (readers >> 2)


@dataclass(frozen=True, slots=True)
class PublishResult:
    generation: str
    changed: bool


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied (uid {os.getuid()})"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    return exc.strerror or str(exc)


class Publisher:
    """Publishes credential sets into one output directory. Not safe for two writers."""

    def __init__(
        self,
        root: Path,
        *,
        file_mode: int = 0o440,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.file_mode = file_mode
        self.dir_mode = dir_mode_for(file_mode)
        self._clock = clock
        self._rng = rng or random.Random()
        self.on_step = on_step or (lambda step: None)

    # -- helpers -----------------------------------------------------------------

    @contextmanager
    def _open_root(self) -> Iterator[int]:
        try:
            fd = os.open(self.root, _DIR_FLAGS | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and self.root.is_symlink()):
                raise PublishError(
                    f"output directory {self.root} is a symlink; refusing to write through it "
                    "(point --out at a real directory)"
                ) from exc
            if exc.errno == errno.ENOTDIR:
                raise PublishError(f"output directory {self.root} is not a directory") from exc
            raise PublishError(f"cannot open output directory {self.root}: {_describe(exc)}") from exc
        try:
            yield fd
        finally:
            os.close(fd)

    def _live_generation(self, root_fd: int) -> str | None:
        """The generation ``..data`` points at, or None; refuses anything foreign."""
        try:
            st = os.lstat(DATA_LINK, dir_fd=root_fd)
        except FileNotFoundError:
            return None
        if not stat.S_ISLNK(st.st_mode):
            raise PublishError(f"{self.root / DATA_LINK} is not a symlink made by vend-sidecar; remove it")
        target = os.readlink(DATA_LINK, dir_fd=root_fd)
        if not GENERATION_RE.fullmatch(target):
            raise PublishError(
                f"{self.root / DATA_LINK} points at {target!r}, not a vend-sidecar generation; remove it"
            )
        return target

    def _check_visible(self, root_fd: int, names: list[str]) -> None:
        for name in names:
            try:
                st = os.lstat(name, dir_fd=root_fd)
            except FileNotFoundError:
                continue
            if not stat.S_ISLNK(st.st_mode) or os.readlink(name, dir_fd=root_fd) != f"{DATA_LINK}/{name}":
                raise PublishError(
                    f"{self.root / name} exists and is not vend-sidecar's link to {DATA_LINK}/{name}; "
                    "refusing to replace it (remove it, or use an empty --out directory)"
                )

    def _read_generation(self, root_fd: int, generation: str) -> dict[str, bytes] | None:
        try:
            gen_fd = os.open(generation, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=root_fd)
        except OSError:
            return None
        try:
            out: dict[str, bytes] = {}
            for name in os.listdir(gen_fd):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=gen_fd)
                with os.fdopen(fd, "rb") as handle:
                    out[name] = handle.read()
            return out
        except OSError:
            return None
        finally:
            os.close(gen_fd)

    def _new_generation_name(self) -> str:
        stamp = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y_%m_%d_%H_%M_%S")
        return f"..{stamp}.{self._rng.getrandbits(32):08x}"

    def _remove_generation(self, root_fd: int, generation: str) -> None:
        # rmtree with dir_fd uses fd-based traversal and never follows links.
        shutil.rmtree(generation, dir_fd=root_fd, ignore_errors=True)

    @staticmethod
    def _fsync_fd(fd: int) -> None:
        os.fsync(fd)

    # -- public ------------------------------------------------------------------

    def prepare(self) -> str | None:
        """Create OUT if missing and remove a crash's debris; returns the live generation.

        Removes ``..data_tmp`` and every generation directory that ``..data`` does not
        point at. Never touches names it does not recognise.
        """
        try:
            self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise PublishError(f"output path {self.root} exists and is not a directory") from exc
        except OSError as exc:
            raise PublishError(f"cannot create output directory {self.root}: {_describe(exc)}") from exc
        with self._open_root() as root_fd:
            live = self._live_generation(root_fd)
            try:
                removed = False
                for entry in os.listdir(root_fd):
                    if entry == TMP_LINK:
                        st = os.lstat(entry, dir_fd=root_fd)
                        if stat.S_ISLNK(st.st_mode):
                            os.unlink(entry, dir_fd=root_fd)
                            removed = True
                    elif GENERATION_RE.fullmatch(entry) and entry != live:
                        st = os.lstat(entry, dir_fd=root_fd)
                        if stat.S_ISDIR(st.st_mode):
                            self._remove_generation(root_fd, entry)
                            removed = True
                if removed:
                    self._fsync_fd(root_fd)
                if live is not None:
                    self._restore_links(root_fd, live)
            except OSError as exc:
                raise PublishError(f"cannot clean up {self.root}: {_describe(exc)}") from exc
            return live

    def publish(self, files: Mapping[str, bytes]) -> PublishResult:
        """Publish ``files`` as one generation; see the module docstring for the steps."""
        names = sorted(files)
        for name in names:
            if not _NAME_RE.fullmatch(name) or name.startswith(".."):
                raise PublishError(f"refusing to publish a file named {name!r}")
        with self._open_root() as root_fd:
            live = self._live_generation(root_fd)
            self._check_visible(root_fd, names)
            self.on_step("validate")

            if live is not None and self._read_generation(root_fd, live) == dict(files):
                self._link_visible(root_fd, names)
                self.on_step("compare")
                return PublishResult(generation=live, changed=False)
            self.on_step("compare")

            generation = self._write_generation(root_fd, files)
            try:
                try:
                    os.unlink(TMP_LINK, dir_fd=root_fd)  # a crash's leftover; it is only ever our link
                except FileNotFoundError:
                    pass
                os.symlink(generation, TMP_LINK, dir_fd=root_fd)
                self.on_step("link_tmp")
                os.rename(TMP_LINK, DATA_LINK, src_dir_fd=root_fd, dst_dir_fd=root_fd)
                self._fsync_fd(root_fd)
            except BaseException as exc:
                self._abandon(root_fd, generation)
                if isinstance(exc, OSError):
                    raise PublishError(f"cannot swap {self.root / DATA_LINK}: {_describe(exc)}") from exc
                raise
            self.on_step("rename")

            # Committed: the new set is live. What follows only tidies up.
            try:
                self._link_visible(root_fd, names)
                self.on_step("links")
            except OSError as exc:
                raise PublishError(f"new set is live but visible links in {self.root} failed: {_describe(exc)}") from exc
            if live is not None and live != generation:
                self._remove_generation(root_fd, live)
                try:
                    self._fsync_fd(root_fd)
                except OSError:
                    pass  # the old directory's removal need not be durable; prepare() redoes it
            self.on_step("cleanup")
            return PublishResult(generation=generation, changed=True)

    def _write_generation(self, root_fd: int, files: Mapping[str, bytes]) -> str:
        for _ in range(8):
            generation = self._new_generation_name()
            try:
                os.mkdir(generation, self.dir_mode, dir_fd=root_fd)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise PublishError(f"cannot create a generation directory in {self.root}: {_describe(exc)}") from exc
        else:
            raise PublishError(f"cannot find a free generation name in {self.root}")
        try:
            gen_fd = os.open(generation, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=root_fd)
            try:
                os.fchmod(gen_fd, self.dir_mode)  # independent of the umask
                self.on_step("mkdir")
                for name, content in files.items():
                    fd = os.open(name, _FILE_FLAGS, self.file_mode, dir_fd=gen_fd)
                    try:
                        view = memoryview(content)
                        while view:
                            written = os.write(fd, view)
                            view = view[written:]
                        os.fchmod(fd, self.file_mode)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                os.fsync(gen_fd)
            finally:
                os.close(gen_fd)
            self.on_step("write")
        except BaseException as exc:
            self._abandon(root_fd, generation)
            if isinstance(exc, OSError):
                raise PublishError(f"cannot write a new set in {self.root}: {_describe(exc)}") from exc
            raise
        return generation

    def _abandon(self, root_fd: int, generation: str) -> None:
        """Undo a publish that has not reached the commit point."""
        try:
            if os.readlink(TMP_LINK, dir_fd=root_fd) == generation:
                os.unlink(TMP_LINK, dir_fd=root_fd)
        except OSError:
            pass
        self._remove_generation(root_fd, generation)

    def _restore_links(self, root_fd: int, live: str) -> None:
        """Create the visible links of the live set that are missing.

        A crash between the swap (step 6) and the links (step 7) of the very first
        set leaves ``..data`` complete but the visible names absent. Existing entries
        are left alone (publish() refuses foreign ones with a clear error).
        """
        try:
            gen_fd = os.open(live, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=root_fd)
        except FileNotFoundError:
            return  # ..data dangles; the next publish replaces it
        try:
            names = sorted(n for n in os.listdir(gen_fd) if _NAME_RE.fullmatch(n))
        finally:
            os.close(gen_fd)
        self._link_visible(root_fd, names)

    def _link_visible(self, root_fd: int, names: list[str]) -> None:
        wanted = set(names)
        changed = False
        for name in names:
            try:
                os.symlink(f"{DATA_LINK}/{name}", name, dir_fd=root_fd)
                changed = True
            except FileExistsError:
                pass  # validated above: it is our link
        for entry in os.listdir(root_fd):
            if entry in wanted or entry.startswith(".."):
                continue
            try:
                st = os.lstat(entry, dir_fd=root_fd)
                if stat.S_ISLNK(st.st_mode) and os.readlink(entry, dir_fd=root_fd) == f"{DATA_LINK}/{entry}":
                    os.unlink(entry, dir_fd=root_fd)  # a name the previous set had and this one lacks
                    changed = True
            except FileNotFoundError:
                continue
        if changed:
            self._fsync_fd(root_fd)
