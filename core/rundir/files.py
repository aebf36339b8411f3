"""The project's file primitives: one atomic write for every file it keeps (run files, checkpoints, the data
cache), one guarded read for every small file it opens, and one answer to "was that failure a full disk?".

- `write_atomically` writes through a temporary file and a rename, and removes the temporary on failure;
  a full disk, however the writer phrased it (an errno, a bare message, torch's "unexpected pos"),
  comes out of it as OSError(ENOSPC) naming the file.
- `read_regular_file` opens regular files only: a FIFO named status.json would block its reader forever
  and a device may never end, so both are refused before they are opened, and the size read is capped.
- `disk_error_sentence` says in one sentence why a write or read of the runs folder failed (a full disk,
  a read-only folder, no permission, a folder gone), for the command line and the pages alike.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_WORDS = ("no space left on device", "disk quota exceeded", "not enough space")
# What torch.save says when its C++ writer could not write everything (no errno reaches Python this way).
_SHORT_WRITE_WORDS = ("unexpected pos", "iostream error", "file write failed", "failed writing file")
NEARLY_FULL_BYTES = 1 << 20  # a short write with less than this free on the disk is taken for a full disk
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` through a temporary file of its own and a rename, so a reader never sees half a file.

    The temporary name is unique per call (two threads writing one file do not collide), and it is
    removed when the write fails, so a full disk is not kept full by our leftovers. The rename replaces a
    link named `path` rather than writing through it. A failure that means "the disk is full" is raised
    as OSError(ENOSPC) for `path`, whatever its original type.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
        return
    except BaseException as exc:
        # Checked before the unlink: the partly written temporary is what fills the disk now.
        full = not _is_plain_no_space(exc) and is_disk_full(exc, path.parent)
        tmp.unlink(missing_ok=True)
        if not full:
            raise
    # Raised outside the except block, so the original exception (and a writer it may still hold open,
    # keeping the removed temporary's space in use) is let go.
    raise no_space_error(path)


def no_space_error(path: Path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _is_plain_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling (torch keeps the errno there)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_disk_full(exc: BaseException, folder: str | Path | None = None) -> bool:
    """Whether `exc` means the disk (or the user's quota) is full.

    The errno decides when there is one (ENOSPC, EDQUOT; any other errno is another failure); an
    OSError without one counts when its text says so. torch.save reports a full disk as a RuntimeError
    without an errno ("unexpected pos ...", "iostream error"): that counts when `folder`'s disk has less
    than NEARLY_FULL_BYTES free, as a short write on a disk with room is some other failure.
    """
    short_write = False
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno is not None:
            return link.errno in NO_SPACE_ERRNOS
        text = str(link).lower()
        if any(words in text for words in _NO_SPACE_WORDS):
            return True
        short_write = short_write or (isinstance(link, RuntimeError) and any(w in text for w in _SHORT_WRITE_WORDS))
    return short_write and folder is not None and free_bytes(folder) < NEARLY_FULL_BYTES


def free_bytes(folder: str | Path) -> int:
    """Bytes this process may still write on `folder`'s disk (a large number when that cannot be told)."""
    try:
        disk = os.statvfs(folder)
    except OSError:
        return 1 << 62
    return disk.f_bavail * disk.f_frsize


def shown_name(filename: str | os.PathLike | None) -> str | None:
    """The file a person would recognise for `filename`: a temporary of write_atomically names its target."""
    if not filename:
        return None
    name = Path(os.fsdecode(filename)).name
    match = _TEMPORARY.match(name)
    return match["name"] if match else name


def disk_error_sentence(exc: BaseException, then: str = "resume the run", verb: str = "write") -> str:
    """One sentence (lower case, no full stop) for a failed write or read of the runs folder: a full disk
    (however it was phrased), a read-only folder, no permission, a missing folder, or else the system's words.

    `then` is what to do once the disk has room again ("try again" for an action on a page); `verb` what
    was being done to the file ("remove" for a deletion)."""
    if is_disk_full(exc):
        return f"the disk is full: free some space, then {then}"
    code = getattr(exc, "errno", None)
    name = shown_name(getattr(exc, "filename", None))
    failed = f"could not {verb}{f' {name}' if name else ''}"
    if code == errno.EROFS:
        return (f"{failed}: the runs folder is on a read-only file system; point CIFAR_RUNS_DIR (or --runs-dir) "
                "at a folder you can write to")
    if code in (errno.EACCES, errno.EPERM):
        return (f"{failed}: permission denied; give this user write access to the runs folder, or point "
                "CIFAR_RUNS_DIR (or --runs-dir) at another folder")
    if code == errno.ENOENT:
        return f"{failed}: its folder no longer exists (it was moved or deleted)"
    return f"{failed}: {getattr(exc, 'strerror', None) or type(exc).__name__}"


def action_error_sentence(exc: BaseException, action: str, verb: str = "write") -> str:
    """The one sentence a page shows when `action` ("Renaming the run") failed on the runs folder."""
    return f"{action} failed: {disk_error_sentence(exc, then='try again', verb=verb)}."


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

class NotARegularFile(OSError):
    """A FIFO, socket, device or folder where a regular file was expected; it was not opened."""


class FileTooLarge(OSError):
    """A file larger than its reader's cap; it was not read."""


_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def file_kind(mode: int) -> str:
    """What a file of `mode` is, in words ("a named pipe (FIFO)", "a regular file")."""
    return next((words for test, words in _KINDS if test(mode)), "a regular file" if stat.S_ISREG(mode)
                else "not a regular file")


def check_regular(path: Path) -> os.stat_result:
    """The stat of `path` (links followed) when it is a regular file; NotARegularFile otherwise, and
    FileNotFoundError when it does not exist. Nothing is opened."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFile(errno.EINVAL, f"it is {file_kind(info.st_mode)}, not a regular file", str(path))
    return info


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes (FileTooLarge beyond it).

    Checked before opening (a FIFO or device is never opened) and again on the open file, which is
    opened without blocking, so a file swapped for a FIFO in between cannot block the reader either.
    """
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(errno.EINVAL, f"it is {file_kind(info.st_mode)}, not a regular file", str(path))
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(errno.EFBIG, f"it is larger than {limit:,} bytes", str(path))
    return data
