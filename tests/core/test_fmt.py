"""The formatting module prints counts, byte sizes and shapes exactly as the views always have."""

from __future__ import annotations

from explorer import fmt


def test_count_uses_decimal_prefixes_with_three_digits():
    assert fmt.count(12_345_678) == "12.3M"
    assert fmt.count(1_500) == "1.5k"
    assert fmt.count(512) == "512"
    assert fmt.count(2.5e12, "B") == "2.5TB"


def test_binary_bytes_uses_kib_mib_gib():
    assert fmt.binary_bytes(512) == "512 B"
    assert fmt.binary_bytes(1536) == "1.5 KiB"
    assert fmt.binary_bytes(3 * 2**20) == "3 MiB"
    assert fmt.binary_bytes(1.25 * 2**30) == "1.25 GiB"


def test_memory_rounds_to_mib_or_tenths_of_a_gib():
    assert fmt.memory(640 * 2**20) == "640 MiB"
    assert fmt.memory(1.44 * 2**30) == "1.4 GiB"
    assert fmt.memory(0.4 * 2**20, mib_decimals=1) == "0.4 MiB"


def test_shape_joins_dimensions():
    assert fmt.shape((32, 32, 16)) == "32×32×16"
    assert fmt.shape((10,)) == "10"
