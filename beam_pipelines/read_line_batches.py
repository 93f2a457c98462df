"""ReadLineBatches: files -> ``(file, first_line_number, [raw line bytes])`` batches.

Line numbers are needed for dead letters, which ReadFromText cannot give. Files are matched at
run time (``fileio.MatchAll``), so building the pipeline never globs gs:// (the equivalent of
``ReadFromText(validate=False)``). Batches keep the per-element Beam overhead off the per-line
path.

``.gz`` / ``.bz2`` inputs are decompressed here, chunk by chunk, instead of by Beam's
extension-based ``CompressedFile``, which raises ``zlib.error`` for a file that is not gzip (the
job dies) and returns a truncated gzip's lines without a word (a partial read that exits 0).
A broken compressed file ends with one more batch, ``(file, line_number, [], error)`` where
``error = (reason, text)``: ``not_gzip`` / ``not_bzip2`` (nothing could be read),
``truncated_gzip`` / ``truncated_bzip2`` (``text`` is the cut last line, the complete lines
before it are read as usual) or ``corrupt_gzip`` / ``corrupt_bzip2`` (bad data or checksum
after line_number - 1 good lines). ParseLines turns it into a dead letter of that reason, so the
cut line is never parsed, nor rejected under another reason.
"""
from __future__ import annotations

import bz2
import zlib

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.fileio import EmptyMatchTreatment

_CHUNK = 1 << 20


class _Broken(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind  # not | truncated | corrupt


def _stream_chunks(raw, new_decompressor, errors, magic: bytes):
    """Decompressed chunks of a stream of one or more members (gzip and bzip2 both allow
    concatenated members; gzip also zero padding after the last); raises _Broken."""
    decompressor = None
    decoded_any = False
    data = raw.read(_CHUNK)
    while data:
        if decompressor is None:
            if decoded_any and not data.strip(b"\x00"):
                data = raw.read(_CHUNK)
                continue
            if not decoded_any and not data.startswith(magic[:len(data)]):
                raise _Broken("not")
            decompressor = new_decompressor()
        try:
            out = decompressor.decompress(data)
        except errors:
            raise _Broken("corrupt") from None
        decoded_any = True
        if out:
            yield out
        if decompressor.eof:
            data = decompressor.unused_data or raw.read(_CHUNK)
            decompressor = None
        else:
            data = raw.read(_CHUNK)
    if decompressor is not None:
        raise _Broken("truncated")


def _gzip_chunks(raw):
    return _stream_chunks(raw, lambda: zlib.decompressobj(wbits=31), zlib.error, b"\x1f\x8b")


def _bzip2_chunks(raw):
    return _stream_chunks(raw, bz2.BZ2Decompressor, (OSError, ValueError), b"BZh")


def _plain_chunks(raw):
    while True:
        data = raw.read(_CHUNK)
        if not data:
            return
        yield data


def _codec(path: str):
    lower = path.lower()
    if lower.endswith(".gz"):
        return "gzip", _gzip_chunks
    if lower.endswith(".bz2"):
        return "bzip2", _bzip2_chunks
    return None, _plain_chunks


class _ReadBatchesFn(beam.DoFn):
    def __init__(self, batch_size: int):
        self._batch_size = batch_size

    def process(self, readable):
        path = readable.metadata.path
        codec, chunks = _codec(path)
        size = self._batch_size
        batch, first, line_number = [], 1, 0
        tail = b""
        with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            try:
                for chunk in chunks(raw):
                    parts = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
                    tail = parts.pop()
                    i, n = 0, len(parts)
                    while i < n:   # whole slices of lines, no Python step per line
                        take = min(size - len(batch), n - i)
                        batch.extend([part + b"\n" for part in parts[i:i + take]])
                        i += take
                        line_number += take
                        if len(batch) >= size:
                            yield (path, first, batch)
                            batch, first = [], line_number + 1
            except _Broken as err:
                if batch:
                    yield (path, first, batch)
                yield (path, line_number + 1, [], (f"{err.kind}_{codec}", tail))
                return
        if tail:
            batch.append(tail)
        if batch:
            yield (path, first, batch)


class ReadLineBatches(beam.PTransform):
    """Read every file matching ``patterns``; output ``(file, first_line_number, lines)``
    (plus the error batch of a broken compressed file, see the module docstring)."""

    def __init__(self, patterns, batch_size: int = 20000):
        super().__init__()
        self._patterns = sorted(set(patterns))
        self._batch_size = batch_size

    def expand(self, pbegin):
        return (
            pbegin
            | "Patterns" >> beam.Create(self._patterns)
            | "Match" >> fileio.MatchAll(EmptyMatchTreatment.DISALLOW)
            | "Open" >> fileio.ReadMatches()
            | "Lines" >> beam.ParDo(_ReadBatchesFn(self._batch_size))
        )
