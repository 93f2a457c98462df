"""JSON text → Python values the way TF Serving's REST parser reads it.

TF Serving parses request bodies with rapidjson 1.1.0 (``tensorflow_serving/workspace.bzl``) as
``ParseStream<kParseIterativeFlag | kParseNanAndInfFlag | kParseStopWhenDoneFlag>`` over a
``UTF8<>`` stream without ``kParseValidateEncodingFlag`` (``util/json_tensor.cc``, ``ParseJson``).
What that means, and what Python's ``json`` does differently:

* **bytes in strings are kept as they are**: invalid UTF-8 is not validated, a string's bytes
  reach the tensor unchanged. Here the body is decoded with ``surrogateescape`` and strings go
  back to bytes with ``string_bytes`` (never U+FFFD);
* ``\\uD800`` not followed by a low-surrogate escape is an error ("The surrogate pair in string is
  invalid.", ``reader.h`` ``ParseStringToStream``); a lone low surrogate ``\\uDC00`` is encoded as
  its 3 UTF-8-style bytes (ED B0 80), as rapidjson 1.1.0 does;
* **nesting has no depth limit** (``kParseIterativeFlag``: an explicit stack, not recursion);
* ``NaN``, ``Inf``, ``Infinity``, ``-Inf``, ``-Infinity`` (and ``-NaN``) are numbers
  (``kParseNanAndInfFlag``, ``ParseNumber``);
* an integer beyond uint64 becomes a double, one of 1.797e307 or more (or a decimal that
  overflows) is "Number too big to be stored in double.";
* the first of duplicate keys wins (``FindMember``) and bytes after the root value are ignored
  (``kParseStopWhenDoneFlag``).

``parse_json`` runs Python's C decoder on small ordinary bodies (the common case, fastest) and
this module's iterative parser on everything else: large bodies (it parses runs of plain
elements in bounded slices with the C decoder, so a 20 MB body never holds the GIL for more than
a fraction of a millisecond at a time and other requests keep being served), invalid UTF-8,
surrogate escapes, long numbers, deep nesting, rapidjson-only tokens. Errors are rapidjson's
texts (``reader.h`` / ``error/en.h``) with byte offsets.
"""
from __future__ import annotations

import itertools
import json
import math
import re
from json.decoder import scanstring

from serving.errors import invalid, too_large

FAST_MAX_BYTES = 256 << 10
_DBG_MAX = 256  # kMaxJsonDebugStringBytes
_WS = " \t\n\r"
_DBL_TOO_BIG = 1.7976931348623157e307  # rapidjson: DBL_MAX / 10

# Anything that needs the exact parser even in a small body (a C-decoder error also falls back).
_NEEDS_EXACT = re.compile(r"\\u[dD][89a-fA-F]|\d{20}|[eE][-+]?\d{3}")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d*)?([eE][-+]?\d*)?")
_SPACE = re.compile(r"[ \t\n\r]*")
# A run of comma-terminated plain elements (numbers, strings without escapes, literals, flat
# arrays and objects of those) that the C decoder may parse as one slice: nothing in it can
# differ from rapidjson (no Inf/NaN, no escapes, at most 19-digit integers, 2-digit exponents).
_NUM = r"-?(?:0|[1-9]\d{0,18})(?:\.\d{1,40})?(?:[eE][-+]?\d{1,2})?(?![\d.eE])"
_STR = r'"[^"\\\x00-\x1f]*"'
_SCALAR = rf"(?:{_NUM}|{_STR}|true|false|null)"
_FLAT = (rf"(?:{_SCALAR}|\[\s*(?:{_SCALAR}(?:\s*,\s*{_SCALAR})*)?\s*\]"
         rf"|\{{\s*(?:{_STR}\s*:\s*{_SCALAR}(?:\s*,\s*{_STR}\s*:\s*{_SCALAR})*)?\s*\}})")
_RUN = re.compile(rf"(?:\s*{_FLAT}\s*,)+")
_RUN_WINDOW = 1 << 14  # ~5 ms of C decoding with the GIL held, at most
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _first_key_wins(pairs):
    out = {}
    for k, v in pairs:
        if k not in out:
            out[k] = v
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_first_key_wins)


def string_bytes(value: str) -> bytes:
    """A parsed JSON string → the bytes TF Serving puts in the tensor."""
    return value.encode("utf-8", "surrogateescape")


def parse_json(body: bytes | str, max_values: int | None = None):
    """Parse a request body (see the module docstring).

    Args:
      max_values: refuse (413 / RESOURCE_EXHAUSTED) a body with more JSON values than this: the
        decoded Python objects, not the body, are what costs memory (~32-100 bytes a value).
        Bodies of up to FAST_MAX_BYTES are not counted (they cannot hold more than ~0.5M values).
    """
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    if not body:
        raise invalid("JSON Parse error: The document is empty")  # json_tensor.cc ParseJson
    if len(body) <= FAST_MAX_BYTES:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and not _NEEDS_EXACT.search(text):
            stripped = text.lstrip(_WS)
            if stripped:
                try:
                    return _DECODER.raw_decode(stripped)[0]
                except (ValueError, RecursionError):
                    pass  # the exact parser finds rapidjson's answer (or its error)
    return _Parser(body.decode("utf-8", "surrogateescape"), max_values).parse()


class _Parser:
    """rapidjson's grammar with an explicit stack (kParseIterativeFlag)."""

    def __init__(self, text: str, max_values: int | None):
        self.text = text
        self.max_values = max_values
        self.values = 0
        self.exact_strings = bool(_SURROGATE_ESCAPE.search(text))

    # -- errors ------------------------------------------------------------------------------
    def error(self, message: str, pos: int):
        offset = len(self.text[:pos].encode("utf-8", "surrogateescape"))
        return invalid(f"JSON Parse error: {message} at offset: {offset}")

    def count(self, n: int = 1) -> None:
        self.values += n
        if self.max_values is not None and self.values > self.max_values:
            raise too_large(f"The request body has more than {self.max_values} JSON values, over the "
                            "server's limit on decoded request memory (--max_decoded_bytes)")

    # -- the document ------------------------------------------------------------------------
    def parse(self):
        text = self.text
        ws = _SPACE.match
        i = ws(text, 0).end()
        if i >= len(text):
            raise self.error("The document is empty.", i)
        root: list = []  # a sentinel container: the root value is appended here
        stack: list = [root]  # the containers being filled (no recursion: any depth)
        keys: list = [None]  # the pending member name of each object on the stack
        expect_value = True
        while True:
            if expect_value:
                self.count()
                c = text[i:i + 1]
                if c == "[":
                    i = ws(text, i + 1).end()
                    stack.append([])
                    keys.append(None)
                    if text[i:i + 1] == "]":
                        self.close(stack, keys)
                        i += 1
                        expect_value = False
                    else:
                        i = self.array_run(text, i, stack[-1])
                    continue
                if c == "{":
                    i = ws(text, i + 1).end()
                    stack.append({})
                    keys.append(None)
                    if text[i:i + 1] == "}":
                        self.close(stack, keys)
                        i += 1
                        expect_value = False
                    else:
                        i = self.member_name(text, i, keys)
                    continue
                value, i = self.scalar(text, i, c)
                self.add(stack, keys, value)
                expect_value = False
                continue
            if len(stack) == 1:  # kParseStopWhenDoneFlag: whatever follows the root is ignored
                return root[0]
            i = ws(text, i).end()
            container = stack[-1]
            is_list = isinstance(container, list)
            c = text[i:i + 1]
            if c == ",":
                i = ws(text, i + 1).end()
                i = self.array_run(text, i, container) if is_list else self.member_name(text, i, keys)
                expect_value = True
            elif c == ("]" if is_list else "}"):
                self.close(stack, keys)
                i += 1
            elif is_list:
                raise self.error("Missing a comma or ']' after an array element.", i)
            else:
                raise self.error("Missing a comma or '}' after an object member.", i)

    def close(self, stack, keys) -> None:
        done = stack.pop()
        keys.pop()
        self.add(stack, keys, done)

    @staticmethod
    def add(stack, keys, value) -> None:
        container = stack[-1]
        if isinstance(container, list):
            container.append(value)
        else:
            key = keys[-1]
            if key not in container:  # FindMember returns the first of duplicate keys
                container[key] = value

    def member_name(self, text: str, i: int, keys) -> int:
        """``"name" :`` at ``i``; returns where the member's value starts."""
        if text[i:i + 1] != '"':
            raise self.error("Missing a name for object member.", i)
        keys[-1], i = self.string(text, i)
        i = _SPACE.match(text, i).end()
        if text[i:i + 1] != ":":
            raise self.error("Missing a colon after a name of object member.", i)
        return _SPACE.match(text, i + 1).end()

    def array_run(self, text: str, i: int, container: list) -> int:
        """Parse the plain elements from ``i`` in bounded slices with the C decoder (fast, and
        the GIL is released between slices); returns where the first element not taken starts."""
        while True:
            m = _RUN.match(text, i, min(len(text), i + _RUN_WINDOW))
            if m is None:
                return i
            chunk = text[i:m.end()].rstrip()[:-1]
            values = _DECODER.decode("[" + chunk + "]")
            self.count(len(values) + chunk.count(","))
            container.extend(values)
            i = _SPACE.match(text, m.end()).end()

    def scalar(self, text: str, i: int, c: str):
        if c == '"':
            return self.string(text, i)
        if c == "t" and text.startswith("true", i):
            return True, i + 4
        if c == "f" and text.startswith("false", i):
            return False, i + 5
        if c == "n" and text.startswith("null", i):
            return None, i + 4
        return self.number(text, i)

    # -- scalars -----------------------------------------------------------------------------
    def number(self, text: str, i: int):
        start = i
        minus = text.startswith("-", i)
        j = i + 1 if minus else i
        if text.startswith("NaN", j):
            return float("nan"), j + 3
        if text.startswith("Inf", j):
            j += 3
            if text.startswith("i", j):
                if not text.startswith("inity", j):
                    raise self.error("Invalid value.", j)
                j += 5
            return float("-inf") if minus else float("inf"), j
        m = _NUMBER.match(text, i)
        if m is None:
            raise self.error("Invalid value.", j)
        frac, exp = m.group(1), m.group(2)
        if frac == ".":
            raise self.error("Miss fraction part in number.", m.start(1) + 1)
        if exp is not None and not exp.lstrip("eE+-"):
            raise self.error("Miss exponent in number.", m.end())
        token = m.group(0)
        if frac is None and exp is None:
            if len(token) <= 20:
                value = int(token)
                if -2**63 <= value < 2**64:
                    return value, m.end()
            # beyond uint64 rapidjson goes on as a double, and stops at DBL_MAX / 10
            value = float(token) if len(token) < 400 else math.inf
            if abs(value) >= _DBL_TOO_BIG:
                raise self.error("Number too big to be stored in double.", start)
            return value, m.end()
        value = float(token)
        if math.isinf(value):  # an exponent past what a double holds (kParseErrorNumberTooBig)
            raise self.error("Number too big to be stored in double.", start)
        return value, m.end()

    def string(self, text: str, i: int):
        """The string starting at the quote ``text[i]``; returns (value, index after it)."""
        if self.exact_strings:
            end = text.find('"', i + 1)
            if "\\u" in text[i:end + 1 if end >= 0 else len(text)] or "\\" in text[i + 1:end]:
                return self.escaped_string(text, i)
        try:
            return scanstring(text, i + 1, True)
        except json.JSONDecodeError as err:
            return self.raise_string_error(text, i, err)

    def raise_string_error(self, text: str, i: int, err):
        pos = err.pos
        if "Unterminated" in err.msg:
            raise self.error("Missing a closing quotation mark in string.", len(text)) from None
        if "\\u" in err.msg or "\\u" in text[pos:pos + 2]:
            raise self.error("Incorrect hex digit after \\u escape in string.", pos) from None
        raise self.error("Invalid escape character in string.", pos) from None

    def escaped_string(self, text: str, i: int):
        """rapidjson's string rules character by character (only for strings with surrogate
        escapes: lone high surrogate = error, lone low surrogate = its 3 bytes)."""
        out: list[str] = []
        j = i + 1
        n = len(text)
        simple = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
        while True:
            if j >= n:
                raise self.error("Missing a closing quotation mark in string.", n)
            c = text[j]
            if c == '"':
                return "".join(out), j + 1
            if c == "\\":
                escape_at = j
                e = text[j + 1:j + 2]
                if e in simple:
                    out.append(simple[e])
                    j += 2
                    continue
                if e != "u":
                    raise self.error("Invalid escape character in string.", escape_at)
                code = self.hex4(text, j + 2, escape_at)
                j += 6
                if 0xD800 <= code <= 0xDBFF:
                    if text[j:j + 2] != "\\u":
                        raise self.error("The surrogate pair in string is invalid.", escape_at)
                    low = self.hex4(text, j + 2, escape_at)
                    if not 0xDC00 <= low <= 0xDFFF:
                        raise self.error("The surrogate pair in string is invalid.", escape_at)
                    j += 6
                    out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                elif 0xDC00 <= code <= 0xDFFF:  # rapidjson 1.1.0 encodes it: ED Bx xx
                    out.append(chr(code).encode("utf-8", "surrogatepass").decode("utf-8", "surrogateescape"))
                else:
                    out.append(chr(code))
                continue
            if ord(c) < 0x20:
                raise self.error("Invalid escape character in string.", j)
            out.append(c)
            j += 1

    def hex4(self, text: str, j: int, escape_at: int) -> int:
        digits = text[j:j + 4]
        if len(digits) != 4 or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
            raise self.error("Incorrect hex digit after \\u escape in string.", escape_at)
        return int(digits, 16)


# --------------------------------------------------------------------------------------------
# Debug strings for error messages (JsonValueToDebugString): pretty, arrays on one line,
# truncated at 256 bytes, written iteratively so that no depth of nesting can break it.


def dbg(value) -> str:
    out: list[str] = []
    size = 0
    work: list = [("v", value, 0)]  # ("v", value, indent) | ("s", text); a stack, so reversed
    while work and size < _DBG_MAX:
        item = work.pop()
        if item[0] == "s":
            piece = item[1]
        else:
            _, v, indent = item
            if isinstance(v, dict) and v:
                items = list(itertools.islice(v.items(), _DBG_MAX))  # the rest cannot fit in 256 bytes
                pad = " " * (indent + 4)
                work.append(("s", "\n" + " " * indent + "}"))
                for idx in range(len(items) - 1, -1, -1):
                    key, child = items[idx]
                    work.append(("v", child, indent + 4))
                    work.append(("s", "\n" + pad + _dbg_scalar(key) + ": "))
                    if idx > 0:
                        work.append(("s", ","))
                piece = "{"
            elif isinstance(v, list) and v:
                work.append(("s", "]"))
                for idx in range(min(len(v), _DBG_MAX) - 1, -1, -1):
                    work.append(("v", v[idx], indent))
                    if idx > 0:
                        work.append(("s", ", "))
                piece = "["
            elif isinstance(v, dict):
                piece = "{}"
            elif isinstance(v, list):
                piece = "[]"
            else:
                piece = _dbg_scalar(v)
        out.append(piece)
        size += len(piece)
    encoded = "".join(out).encode("utf-8", "surrogateescape")
    return encoded[:_DBG_MAX].decode("utf-8", "ignore") if len(encoded) > _DBG_MAX else encoded.decode(
        "utf-8", "surrogateescape")


def _dbg_scalar(v) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
    return json.dumps(v)
