"""TFRecord framing written to a deterministic gzip stream (no mtime, no file name)."""
from __future__ import annotations

import gzip
import struct

import google_crc32c


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def frame(record: bytes) -> bytes:
    """One TFRecord: length, masked crc32c of the length, data, masked crc32c of the data."""
    length = struct.pack("<Q", len(record))
    return length + _masked_crc(length) + record + _masked_crc(record)


class GzipTFRecordWriter:
    """Streaming writer of one ``.tfrecord.gz`` through Beam FileSystems (local or gs://);
    deterministic bytes (gzip mtime 0, no file name)."""

    def __init__(self, path: str):
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        self._raw = FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
        self._buffer: list[bytes] = []
        self.count = 0

    def write(self, record: bytes) -> None:
        self._buffer.append(frame(record))
        self.count += 1
        if len(self._buffer) >= 4096:
            self._gz.write(b"".join(self._buffer))
            self._buffer.clear()

    def close(self) -> None:
        self._gz.write(b"".join(self._buffer))
        self._buffer.clear()
        self._gz.close()
        self._raw.close()


def write_gzip_tfrecords(path: str, records) -> int:
    """Write ``records`` (bytes) to ``path`` through Beam FileSystems (local or gs://).

    Returns the number of records. Same records -> same bytes: gzip mtime is 0.
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    n = 0
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            buffer = []
            for record in records:
                buffer.append(frame(record))
                n += 1
                if len(buffer) >= 4096:
                    gz.write(b"".join(buffer))
                    buffer.clear()
            gz.write(b"".join(buffer))
    return n
