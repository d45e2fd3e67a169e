"""The row checksum the export tests compare: FNV-1a 64 of each row's canonical text
`partition:offset:hex(key):hex(value)` (a null is `-`), summed modulo 2**64 so that row order
does not matter. tests/tests/export.rs computes the same sum in Rust."""

MASK = (1 << 64) - 1


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def row_hash(partition, offset, key, value) -> int:
    k = "-" if key is None else bytes(key).hex()
    v = "-" if value is None else bytes(value).hex()
    return fnv1a64(f"{int(partition)}:{int(offset)}:{k}:{v}".encode())


def checksum(rows) -> tuple[int, int]:
    """(count, checksum) of an iterable of (partition, offset, key, value)."""
    n = 0
    total = 0
    for p, o, k, v in rows:
        n += 1
        total = (total + row_hash(p, o, k, v)) & MASK
    return n, total
