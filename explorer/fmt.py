"""Number formatting in one place: counts, byte sizes and tensor shapes as the app and the CLI print them."""

from __future__ import annotations

KIB = 2**10
MIB = 2**20
GIB = 2**30


def count(n: float, unit: str = "") -> str:
    """A count with a decimal prefix and three significant digits.

    Args:
        n: The number (parameters, MACs, images, …).
        unit: Appended after the prefix, e.g. "B" or "/s".

    Returns:
        12_345_678 → "12.3M", 1_500 → "1.5k", 512 → "512".
    """
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:g}{unit}"


def count_label(n: float) -> str:
    """A count as diagram labels write it, shorter than `count`: 1234 → "1.23K", 2_360_000 → "2.36M", 512 → "512"."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(int(n))


def binary_bytes(n: float) -> str:
    """Bytes with a binary prefix and three significant digits: 1536 → "1.5 KiB", 3 * 2**20 → "3 MiB", 512 → "512 B"."""
    for scale, suffix in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if n >= scale:
            return f"{n / scale:.3g} {suffix}"
    return f"{n:g} B"


def memory(n: float, *, mib_decimals: int = 0) -> str:
    """A memory size in MiB below a GiB and in GiB with one decimal above: "640 MiB", "1.4 GiB".

    Args:
        n: Bytes.
        mib_decimals: Decimals shown for MiB ("12.3 MiB" with 1).
    """
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    return f"{n / MIB:,.{mib_decimals}f} MiB"


def shape(dims: tuple[int, ...]) -> str:
    """A tensor shape as the views write it: (32, 32, 16) → "32×32×16"."""
    return "×".join(str(d) for d in dims)
