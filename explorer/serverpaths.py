"""Which server paths a page may name: only inside the folders the teacher shares (`EXPLORER_DATA_ROOTS`) when served.

Every path a browser can type (the Train tab's CIFAR-10 folder, image folder, validation folder
and ImageNet weights file) goes through `PathPolicy.check` before anything looks at it:

* **Shared folders set** (`EXPLORER_DATA_ROOTS`, folders separated by `os.pathsep` or commas;
  `CIFAR10_DIR` is always one of them): a path is resolved — `~`, `..` and every symbolic link —
  and must then lie inside one of them. A path outside them and a path that does not exist get
  the *same* message, so the page cannot be used to learn what exists elsewhere on the server. A
  relative path is looked up inside the shared folders.
* **Served to others without shared folders** (Streamlit's `server.address` is not a loopback
  address — its default, unset, listens on every interface — or `EXPLORER_SHARED=1`): only
  `CIFAR10_DIR` may be named; anything else is refused with a message for the teacher.
  Students upload a `.zip` of their images instead.
* **On the owner's own machine** (`server.address` is `localhost`/`127.0.0.1`, as the repo's
  `.streamlit/config.toml` sets it, or `EXPLORER_SHARED=0`): any path, as typed.

System folders (`/proc`, `/sys`, `/dev`) are refused everywhere. The command line is the server's
owner: its paths are not checked here. Plain Python, no Streamlit.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from explorer.data import ENV_VAR, DataError

ROOTS_ENV = "EXPLORER_DATA_ROOTS"
SHARED_ENV = "EXPLORER_SHARED"
SYSTEM_DIRS = ("/proc", "/sys", "/dev")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def is_served(address: str | None, *, env: Mapping[str, str] | None = None) -> bool:
    """Whether the app is reachable by other people than the machine's owner.

    Args:
        address: Streamlit's `server.address` option (None when unset: Streamlit then listens on
            every interface).
        env: The environment (default `os.environ`); `EXPLORER_SHARED=1` says "served" (e.g. behind
            a proxy on loopback), `EXPLORER_SHARED=0` says "only the owner uses it".
    """
    flag = (os.environ if env is None else env).get(SHARED_ENV, "").strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    text = str(address or "").strip()
    if not text or text.startswith("unix://"):  # all interfaces; a unix socket sits behind a proxy
        return True
    if text.lower() in LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(text.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: assume others reach it
        return True


def _split(raw: str) -> list[str]:
    return [part.strip() for part in re.split(f"[{re.escape(os.pathsep)},]", raw) if part.strip()]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def system_dir(path: str | os.PathLike) -> str | None:
    """The system folder (`/proc`, `/sys`, `/dev`) a resolved path lies in, or None."""
    text = os.fspath(path)
    return next((d for d in SYSTEM_DIRS if _inside(text, d)), None)


@dataclass(frozen=True)
class PathPolicy:
    """What a page may name on this server.

    Attributes:
        roots: Resolved folders a path must lie in, or None for any path (the owner's own machine).
        shared: Whether the teacher set `EXPLORER_DATA_ROOTS` (server folders are offered to students).
        served: Whether others reach the app (see `is_served`).
    """

    roots: tuple[str, ...] | None
    shared: bool = False
    served: bool = False

    @property
    def restricted(self) -> bool:
        """Whether paths must lie inside `roots`."""
        return self.roots is not None

    @property
    def folders_offered(self) -> bool:
        """Whether a student may type server folders at all (any path, or shared folders set by the teacher)."""
        return not self.restricted or self.shared

    def allows(self, real: str | os.PathLike) -> bool:
        """Whether an already resolved path may be read (inside a root, never a system folder)."""
        text = os.fspath(real)
        if system_dir(text):
            return False
        return not self.restricted or any(_inside(text, root) for root in self.roots or ())

    def refusal(self, text: str, *, what: str, hint: str = "") -> str:
        """The one message for a path that is missing or not allowed (it depends only on what was typed)."""
        if self.restricted and not self.shared:
            return (f"this server is shared, so it opens no {what} typed into the page. {hint}".rstrip()
                    + f" (The teacher can share server folders by setting {ROOTS_ENV}.)")
        shown = ", ".join(self.roots or ())
        return (f"{what} {text!r} was not found in the folders this server shares ({shown}): type a path inside "
                f"one of them. {hint}").rstrip()

    def check(self, text: str | os.PathLike, *, what: str, hint: str = "") -> Path:
        """The path a page typed, if it may be read.

        Args:
            text: What was typed.
            what: What it names, for the message (e.g. "image folder").
            hint: A sentence added to a refusal (e.g. where else to get data).

        Returns:
            As typed (`~` expanded) on the owner's machine; resolved (links, `..`) when paths are restricted.

        Raises:
            DataError: Empty, a system folder, or — when restricted — missing or outside the shared
                folders (one message for both).
        """
        raw = os.fspath(text).strip()
        if not raw:
            raise DataError(f"no {what} given.")
        try:
            path = Path(raw).expanduser()
            real = os.path.realpath(path)
        except (ValueError, OSError, RuntimeError):  # NUL bytes, a loop of links, ...
            raise DataError(self.refusal(raw, what=what, hint=hint)) from None
        system = system_dir(real)
        if system:
            raise DataError(f"{what} {raw!r} is in {system}, a system folder that holds no data to train on.")
        if not self.restricted:
            return path
        for candidate in self._candidates(raw, path, real):
            if self.allows(candidate) and os.path.exists(candidate):
                return Path(candidate)
        raise DataError(self.refusal(raw, what=what, hint=hint))

    def _candidates(self, raw: str, path: Path, real: str) -> list[str]:
        if path.is_absolute():
            return [real]
        out = []
        for root in self.roots or ():  # a relative path: inside each shared folder in turn
            try:
                out.append(os.path.realpath(os.path.join(root, raw)))
            except (ValueError, OSError, RuntimeError):
                continue
        return out


def policy(*, served: bool, env: Mapping[str, str] | None = None) -> PathPolicy:
    """The policy `EXPLORER_DATA_ROOTS` and `CIFAR10_DIR` give, for an app that is `served` or not.

    Args:
        served: Whether others reach the app (`is_served`).
        env: The environment (default `os.environ`).
    """
    env = os.environ if env is None else env
    shared = _split(env.get(ROOTS_ENV, ""))
    roots = shared + ([env[ENV_VAR].strip()] if env.get(ENV_VAR, "").strip() else [])
    if not shared and not served:
        return PathPolicy(roots=None, shared=False, served=False)
    resolved = _resolve_roots(roots)
    return PathPolicy(roots=resolved, shared=bool(shared), served=served)


def _resolve_roots(roots: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for root in roots:
        try:
            real = os.path.realpath(os.path.expanduser(root))
        except (ValueError, OSError, RuntimeError):
            continue
        if real not in out and not system_dir(real):
            out.append(real)
    return tuple(out)


def allowed_path(text: str | os.PathLike, *, what: str, served: bool, hint: str = "",
                 env: Mapping[str, str] | None = None) -> Path:
    """`policy(served=served, env=env).check(text, what=what, hint=hint)`: the path, if a page may name it.

    Raises:
        DataError: See `PathPolicy.check`.
    """
    return policy(served=served, env=env).check(text, what=what, hint=hint)
