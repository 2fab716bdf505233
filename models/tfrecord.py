"""TFRecord files read without TensorFlow: the framing, with its CRC32C checks.

TensorFlow's own readers either start its runtime (`tf.data`: after that, GPU memory growth can no
longer be set for the inpainter) or are deprecated (`tf_record_iterator`, which warns on every
worker to use `tf.data`). This reads any file object (local, `gs://` through Beam or fsspec).
"""
from __future__ import annotations

import struct

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(stream):
    """Yields the records of a TFRecord file object (each: u64 length, u32 masked CRC of the length,
    data, u32 masked CRC of the data); raises ValueError at the first truncated or corrupt one."""
    while header := stream.read(12):
        if len(header) < 12:
            raise ValueError("truncated TFRecord file (a record's header is cut short)")
        length, length_crc = struct.unpack("<QI", header)
        if _masked_crc(header[:8]) != length_crc:  # checked before reading `length` bytes
            raise ValueError("corrupt TFRecord file (a record's length fails its CRC check)")
        data, footer = stream.read(length), stream.read(4)
        if len(data) < length or len(footer) < 4:
            raise ValueError("truncated TFRecord file (a record is cut short)")
        if _masked_crc(data) != struct.unpack("<I", footer)[0]:
            raise ValueError("corrupt TFRecord file (a record fails its CRC check)")
        yield data
