"""TF Serving's REST API (TFSERVING_CONTRACT.md §1) on aiohttp.

``dispatch`` is the protocol logic (raw path + method + body → status + JSON text) and knows
nothing of the HTTP stack; ``RestServer`` runs it on an aiohttp event loop in its own thread.
Routing is done on the raw, percent-encoded path (query included) with TF Serving's regexes.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import re
import selectors
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from serving.errors import ServingError, invalid
from serving.example_json import parse_examples_body
from serving.idle_poll import IdlePoll
from serving.json_request import parse_predict_body
from serving.json_response import error_json, make_classify_json, make_predict_json, make_regress_json
from serving.json_text import parse_json

log = logging.getLogger(__name__)

V1_RE = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
POST_RE = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
                     re.IGNORECASE)
GET_RE = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?",
                    re.IGNORECASE)
ORIGIN_RE = re.compile(r"https?://.*")
NOT_FOUND_HTML = ("<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n"
                  "</BODY></HTML>\n")
INT64_MAX = 2**63 - 1


def _version(digits: str | None) -> int | None:
    if digits is None:
        return None
    value = int(digits)
    if value > INT64_MAX:
        raise invalid(f"Failed to convert version: {digits} to numeric.")
    return value


class PendingPredict:
    """A batched Predict still running: ``future`` gets the outputs, ``row`` picks the format."""

    __slots__ = ("future", "row")

    def __init__(self, future, row: bool):
        self.future, self.row = future, row

    def finish(self) -> tuple[int, str]:
        """(HTTP status, JSON text) once ``future`` is done."""
        try:
            return 200, make_predict_json(self.future.result(), self.row)
        except ServingError as err:
            return err.http_status, error_json(err.message)
        except Exception as err:  # noqa: BLE001
            log.exception("REST request failed")
            return 500, error_json(f"Internal error: {err}")


def dispatch(manager, method: str, path: str, body: bytes, pending: bool = False,
             max_json_values: int | None = None) -> tuple[int, "str | PendingPredict"]:
    """One REST request → (HTTP status, JSON text). Errors come back as ``{"error": ...}``.

    With ``pending=True`` a Predict that goes through the batcher comes back as a
    ``PendingPredict`` (status 200) instead of blocking until its batch has run.
    ``max_json_values`` caps the decoded body (413 beyond it, see json_text.parse_json)."""
    try:
        return 200, _dispatch(manager, method, path, body, pending, max_json_values)
    except ServingError as err:
        return err.http_status, error_json(err.message)
    except Exception as err:  # noqa: BLE001 - the server keeps serving whatever happens
        log.exception("REST request failed")
        return 500, error_json(f"Internal error: {err}")


_GC_LOCK = threading.Lock()
_GC_PAUSES = 0


@contextlib.contextmanager
def large_request_mode():
    """While a large request runs: a 1 ms GIL switch interval (below), and no cyclic garbage
    collection while a large request builds millions of small lists: each
    full collection walks all of them with the GIL held (gaps of 250-475 ms measured for one
    20 MB body, the other requests waiting) and, repeated as the structure grows, made the parse
    about twice as slow. Reference counting still frees everything that is not a cycle; the
    collector comes back when the last large request is done."""
    global _GC_PAUSES
    with _GC_LOCK:
        if _GC_PAUSES == 0:
            was_enabled = gc.isenabled()
            gc.disable()
            large_request_mode.was_enabled = was_enabled
            # the pool thread and the event loop share the GIL: hand it over every 1 ms instead
            # of 5 while a large request runs, so a small one waits less (only then: with many
            # gRPC threads a short interval costs throughput)
            large_request_mode.interval = sys.getswitchinterval()
            sys.setswitchinterval(min(large_request_mode.interval, 0.001))
        _GC_PAUSES += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES -= 1
            if _GC_PAUSES == 0:
                sys.setswitchinterval(large_request_mode.interval)
                if large_request_mode.was_enabled:
                    gc.enable()


large_request_mode.was_enabled = True


def dispatch_large(manager, method: str, path: str, body: bytes, max_json_values: int | None = None):
    """``dispatch`` for a large body (run in the large-request pool), with the collector paused."""
    with large_request_mode():
        return dispatch(manager, method, path, body, False, max_json_values)


def _dispatch(manager, method: str, path: str, body: bytes, pending: bool = False, max_json_values=None):
    if method == "POST":
        m = POST_RE.fullmatch(path)
        if m and m.group(4) in ("classify", "regress", "predict"):
            name, version, label = unquote(m.group(1)), _version(m.group(2)), m.group(3)
            label = unquote(label) if label else None
            return _post(manager, m.group(4), name, version, label, body, pending, max_json_values)
    elif method == "GET":
        m = GET_RE.fullmatch(path)
        if m:
            if not m.group(1):
                raise invalid("Missing model name in request.")
            name, version, label = unquote(m.group(1)), _version(m.group(2)), m.group(3)
            label = unquote(label) if label else None
            if m.group(4):
                return _metadata(manager, name, version, label)
            return status_json(manager, name, version)
    raise invalid(f"Malformed request: {method} {path}")


def _post(manager, kind: str, name: str, version, label, body: bytes, pending: bool = False,
          max_json_values=None):
    doc = parse_json(body, max_json_values)
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {parse_json_dbg(doc)} Is not object")
    sig_name = doc.get("signature_name", "")
    if not isinstance(sig_name, str):
        raise invalid(f"JSON Value: {parse_json_dbg(doc)} not formatted correctly. 'signature_name' key must be a "
                      "string value.")
    servable = manager.get(name, version, label)
    if kind == "predict":
        key, sig = servable.signature(sig_name)
        if sig is None:
            raise invalid(f'Serving signature name: "{key}" not found in signature def')
        if not sig.inputs:
            raise invalid(f"Failed to get input map for signature: {sig_name or 'DEFAULT'}")
        inputs, row = parse_predict_body(doc, servable.input_dtypes[key])
        if pending:
            future = servable.predict_future(key, inputs)
            if future is not None:
                return PendingPredict(future, row)
        outputs = servable.predict(key, inputs)
        return make_predict_json(outputs, row)
    examples = parse_examples_body(doc)
    if kind == "classify":
        return make_classify_json(servable.classify(sig_name, examples))
    return make_regress_json(servable.regress(sig_name, examples))


def parse_json_dbg(doc) -> str:
    from serving.json_text import dbg

    return dbg(doc)


def status_json(manager, name: str, version) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(status_response(manager, name, version), preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True, indent=1)


def status_response(manager, name: str, version):
    from tensorflow_serving.apis import get_model_status_pb2

    resp = get_model_status_pb2.GetModelStatusResponse()
    for st in manager.status(name, version):
        v = resp.model_version_status.add()
        v.version = st.version
        v.state = get_model_status_pb2.ModelVersionStatus.State.Value(st.state)
        v.status.SetInParent()
        v.status.error_code = int(st.error_code)
        v.status.error_message = st.error_message
    return resp


def signature_def_map(servable):
    from tensorflow_serving.apis import get_model_metadata_pb2

    sdm = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in servable.signature_defs.items():
        sdm.signature_def[key].CopyFrom(sig)
    return sdm


def _metadata(manager, name: str, version, label) -> str:
    from google.protobuf import json_format

    servable = manager.get(name, version, label)
    sdm_json = json_format.MessageToJson(signature_def_map(servable), preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    spec = ('{"name": ' + _json_str(name) + ', "signature_name": "", "version": "' + str(servable.version) + '"}')
    return '{\n"model_spec":' + spec + ',\n"metadata": {"signature_def": ' + sdm_json + "\n}\n}"


def _json_str(s: str) -> str:
    import json

    return json.dumps(s, ensure_ascii=False)


BYTES_PER_JSON_VALUE = 64  # a decoded JSON value's Python object + its slot in a list, roughly


class BusyPollSelector(selectors.DefaultSelector):
    """A selector that polls without blocking for an adaptive window before it sleeps in
    ``epoll_wait`` (``--busy_poll_us``, serving/idle_poll.py): the event loop's thread keeps its
    core awake for the next request of a steady stream, and stops polling when requests are
    sparse."""

    def __init__(self, max_us: int):
        super().__init__()
        self.idle = IdlePoll(max_us)
        # bound once: select() runs on every turn of the event loop
        self._select = super().select
        self._poll_now = functools.partial(self._select, 0)

    def select(self, timeout=None):
        if timeout is not None and timeout < 0:
            timeout = 0
        return self.idle.wait(self._poll_now, self._select, bool, timeout)


class RestServer:
    """aiohttp on its own event loop thread.

    Concurrency model: one asyncio loop accepts and parses (keep-alive connections are cheap).
    A request of up to ``large_request_bytes`` runs inline on the loop when
    ``inference_threads == 0`` (no thread hand-off for small, CPU-bound models); a larger one
    runs in a bounded pool of ``large_request_threads`` (at most ``max_pending_large`` queued or
    running, 429 beyond), so the loop keeps answering small requests while it is decoded and
    run: the JSON parser works in bounded slices (serving/json_text.py), releasing the GIL
    between them. With ``inference_threads > 0`` every request runs in a pool of that size (TF
    releases the GIL inside ops, so larger models overlap; needed for the REST deadline).
    ``bench/serving_bench.py`` and ``bench/serving_load_bench.py`` measure both.
    """

    def __init__(self, manager, host: str = "127.0.0.1", port: int = 0, max_request_bytes: int = 64 << 20,
                 inference_threads: int = 0, enable_cors: bool = False, shutdown_timeout: float = 10.0,
                 timeout_seconds: float = 30.0, large_request_bytes: int = 256 << 10,
                 large_request_threads: int = 1, max_pending_large: int = 4,
                 max_decoded_bytes: int = 2 << 30, middlewares=(), busy_poll_us: int = 0):
        self.manager, self.host, self.requested_port = manager, host, port
        self.busy_poll_us = busy_poll_us  # > 0: the loop polls up to that long before it sleeps
        self.middlewares = tuple(middlewares)  # e.g. serving.metrics.aiohttp_middleware
        self.max_request_bytes = max_request_bytes
        self.enable_cors = enable_cors
        self.shutdown_timeout = shutdown_timeout
        self.timeout_seconds = timeout_seconds
        self.large_request_bytes = large_request_bytes
        self.max_pending_large = max(1, max_pending_large)
        self.max_json_values = max(1, max_decoded_bytes // BYTES_PER_JSON_VALUE)
        self._pending_large = 0
        self._executor = ThreadPoolExecutor(inference_threads, thread_name_prefix="rest-infer") \
            if inference_threads > 0 else None
        self._large_executor = ThreadPoolExecutor(max(1, large_request_threads), thread_name_prefix="rest-large")
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- aiohttp handler -----------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        if not self.enable_cors:
            return {}
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, GET",
                "Access-Control-Allow-Headers": "Content-Type"}

    async def _handle(self, request):
        from aiohttp import web

        path = request.raw_path
        if not V1_RE.fullmatch(path):
            return web.Response(status=404, body=NOT_FOUND_HTML.encode(), content_type="text/html", headers=self._headers())
        if request.method == "OPTIONS":
            ok = ORIGIN_RE.match(request.headers.get("Origin", "") or "")
            return web.Response(status=200 if ok else 400, body=b"", content_type="application/json",
                                headers=self._headers())
        length = request.content_length
        if length is not None and length > self.max_request_bytes:
            return self._json(413, error_json(f"Request body of {length} bytes exceeds the limit of "
                                              f"{self.max_request_bytes} bytes (--max_request_bytes)"))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._json(413, error_json(f"Request body exceeds the limit of {self.max_request_bytes} bytes "
                                              "(--max_request_bytes)"))
        if self._executor is not None:
            run = dispatch_large if len(body) > self.large_request_bytes else None
            return self._json(*await self._in_pool(self._executor, request.method, path, body, run))
        if len(body) > self.large_request_bytes:
            if self._pending_large >= self.max_pending_large:
                return self._json(429, error_json(
                    f"{self._pending_large} large requests (over {self.large_request_bytes} bytes) are already "
                    "being processed; retry later"))
            self._pending_large += 1  # only the loop thread touches it
            try:
                return self._json(*await self._in_pool(self._large_executor, request.method, path, body,
                                                       dispatch_large))
            finally:
                self._pending_large -= 1
        status, text = dispatch(self.manager, request.method, path, body, pending=True,
                                max_json_values=self.max_json_values)
        if isinstance(text, PendingPredict):
            # Batched: the event loop keeps reading other requests meanwhile.
            try:
                await asyncio.wait_for(asyncio.wrap_future(text.future), self.timeout_seconds)
            except asyncio.TimeoutError:
                return self._json(504, error_json("Deadline Exceeded"))
            except Exception:  # noqa: BLE001 - finish() turns it into the error body
                pass
            status, text = text.finish()
        return self._json(status, text)

    async def _in_pool(self, executor, method: str, path: str, body: bytes, run=None) -> tuple[int, str]:
        if run is None:
            work = asyncio.get_running_loop().run_in_executor(
                executor, dispatch, self.manager, method, path, body, False, self.max_json_values)
        else:
            work = asyncio.get_running_loop().run_in_executor(
                executor, run, self.manager, method, path, body, self.max_json_values)
        try:
            # --rest_api_timeout_in_ms: the client gets 504; the model call itself finishes.
            return await asyncio.wait_for(work, self.timeout_seconds)
        except asyncio.TimeoutError:
            return 504, error_json("Deadline Exceeded")

    def _json(self, status: int, text: str):
        from aiohttp import web

        # Bytes, so that aiohttp adds no "; charset=utf-8" (TF Serving sends application/json
        # alone, http_rest_api_handler.cc); strings keep the bytes they were parsed from
        # (json_text.string_bytes), so encode them back the same way.
        try:
            body = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            body = text.encode("utf-8", "backslashreplace")
        return web.Response(status=status, body=body, content_type="application/json", headers=self._headers())

    # -- lifecycle ---------------------------------------------------------------------------
    async def _start(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=self.max_request_bytes, middlewares=self.middlewares)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.shutdown_timeout,
                                     handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port, backlog=1024, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def _run(self) -> None:
        if self.busy_poll_us > 0:
            loop = asyncio.SelectorEventLoop(BusyPollSelector(self.busy_poll_us))
        else:
            loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
        except BaseException as err:  # noqa: BLE001
            self._error = err
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rest-server", daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        if self.port is None:
            raise RuntimeError("REST server did not start")

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to shutdown_timeout), then stop."""
        if self._loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            fut.result(timeout=self.shutdown_timeout + 5)
        except Exception:  # noqa: BLE001
            log.exception("REST shutdown")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._large_executor.shutdown(wait=True)
        self._loop = None


__all__ = ["RestServer", "dispatch"]
