"""TFRecord framing written to a deterministic gzip stream (no mtime, no file name).

Compression runs in a thread of its own: zlib releases the GIL while it deflates, so the
caller keeps building records on one core while the previous 4096 are compressed on the other
(on the default world, deflate is about a third of the build's CPU). The gzip stream gets the
same ``write`` calls in the same order as a single-threaded writer, so the bytes are the same.
"""
from __future__ import annotations

import gzip
import queue
import struct
import threading

import google_crc32c

_FLUSH_RECORDS = 4096   # records framed per gzip write
_QUEUE_CHUNKS = 4       # chunks waiting for the compressor (bounds the memory they hold)


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


_HEADERS: dict[int, bytes] = {}   # record length -> its 12-byte header (lengths repeat)


def _header(n: int) -> bytes:
    """A record's length and the masked crc32c of the length."""
    header = _HEADERS.get(n)
    if header is None:
        length = struct.pack("<Q", n)
        header = length + _masked_crc(length)
        if len(_HEADERS) < 1 << 16:
            _HEADERS[n] = header
    return header


class _Compressor:
    """A gzip stream (mtime 0, no name) over ``raw`` fed by a background thread."""

    def __init__(self, raw):
        self._raw = raw
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        self._queue: queue.Queue = queue.Queue(_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tfrecord-gzip", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is None:
                try:
                    self._gz.write(chunk)
                except BaseException as err:  # noqa: BLE001 - raised in the caller's thread
                    self._error = err

    def write(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            self._gz.close()
        finally:
            self._raw.close()


class GzipTFRecordWriter:
    """Streaming writer of one ``.tfrecord.gz`` through Beam FileSystems (local or gs://);
    deterministic bytes (gzip mtime 0, no file name)."""

    def __init__(self, path: str):
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        self._out = _Compressor(FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED))
        self._buffer: list[bytes] = []
        self.count = 0

    def write(self, record: bytes) -> None:
        # a TFRecord: length, masked crc32c of the length, data, masked crc32c of the data
        self._buffer += (_header(len(record)), record, _masked_crc(record))
        self.count += 1
        if len(self._buffer) >= 3 * _FLUSH_RECORDS:
            self._out.write(b"".join(self._buffer))
            self._buffer.clear()

    def close(self) -> None:
        self._out.write(b"".join(self._buffer))
        self._buffer.clear()
        self._out.close()


def write_gzip_tfrecords(path: str, records) -> int:
    """Write ``records`` (bytes) to ``path`` through Beam FileSystems (local or gs://).

    Returns the number of records. Same records -> same bytes: gzip mtime is 0.
    """
    writer = GzipTFRecordWriter(path)
    try:
        for record in records:
            writer.write(record)
    finally:
        writer.close()
    return writer.count
