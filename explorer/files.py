"""Reading the files a user names: regular files only (never a FIFO or a device), and never more than a limit.

A path from a command line, a text box or a data folder may name `/dev/zero`, a FIFO that
blocks the reader until someone writes, or a file far larger than anything the explorer
reads. `check_kind` looks with `os.stat` before anything opens the path; `open_regular`
and `read_regular` open it without blocking and check the open descriptor itself, so a FIFO
or device put there after the check is refused too. Callers turn `FileRefused` into their
own error (`ConfigError`, `DataError`, `InferenceError`) with what to do.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

_KINDS = (
    (stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """A path that is not what the caller reads (not a regular file, not a folder), or a file over the limit.

    Attributes:
        path: The path as given.
        kind: What it is, in words ("a character device", "a regular file", ...).
        size: Its size in bytes when it was refused for its size, else None.
    """

    def __init__(self, message: str, *, path: str, kind: str, size: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind
        self.size = size


def describe_mode(mode: int) -> str:
    """What an `st_mode` is, in words: "a regular file", "a folder", "a FIFO (named pipe)", ..."""
    return next((what for test, what in _KINDS if test(mode)), "not a file or folder")


def check_kind(path: str | os.PathLike, *, want: str) -> bool:
    """Check with `os.stat` (links followed, nothing opened) that a path is what the caller will read.

    Args:
        path: The path.
        want: "file" (a regular file), "folder", or "file or folder".

    Returns:
        True when it is; False when nothing is there (the caller says what is missing).

    Raises:
        FileRefused: It is something else (a device, a FIFO, a folder where a file is wanted, ...).
        OSError: It cannot be looked at (permissions, a loop of links, a name too long).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    ok = {"file": stat.S_ISREG(mode), "folder": stat.S_ISDIR(mode),
          "file or folder": stat.S_ISREG(mode) or stat.S_ISDIR(mode)}[want]
    if not ok:
        kind = describe_mode(mode)
        wanted = {"file": "a regular file", "folder": "a folder", "file or folder": "a regular file or a folder"}[want]
        raise FileRefused(f"{os.fspath(path)} is not {wanted} (it is {kind})", path=os.fspath(path), kind=kind)
    return True


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading; anything else is refused without blocking or reading.

    Raises:
        FileRefused: Not a regular file.
        OSError: It cannot be opened.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)  # non-blocking: opening a FIFO does not wait for a writer
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = describe_mode(mode)
            raise FileRefused(f"{os.fspath(path)} is not a regular file (it is {kind})", path=os.fspath(path), kind=kind)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(handle: BinaryIO, *, limit: int, path: str | os.PathLike) -> bytes:
    """Read at most `limit` bytes from an open file; more (a file that grew, a size that lied) is refused.

    Raises:
        FileRefused: The file holds more than `limit` bytes (`size` is how many were read).
    """
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"{os.fspath(path)} holds more than {limit:,} bytes", path=os.fspath(path),
                          kind="a regular file", size=len(data))
    return data


def read_regular(path: str | os.PathLike, *, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (checked on the open file, before reading it).

    Raises:
        FileRefused: Not a regular file, or more than `limit` bytes.
        OSError: It cannot be opened or read.
    """
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:  # refused unread
            raise FileRefused(f"{os.fspath(path)} is {size:,} bytes, more than {limit:,}", path=os.fspath(path),
                              kind="a regular file", size=size)
        return read_capped(handle, limit=limit, path=path)
