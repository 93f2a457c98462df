"""TF Serving's REST API (TFSERVING_CONTRACT.md §1) on aiohttp.

``dispatch`` is the protocol logic (raw path + method + body → status + JSON text) and knows
nothing of the HTTP stack; ``RestServer`` runs it on an aiohttp event loop in its own thread.
Routing is done on the raw, percent-encoded path (query included) with TF Serving's regexes.
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from serving.errors import ServingError, invalid
from serving.tensors import (error_json, make_classify_json, make_predict_json, make_regress_json,
                             parse_examples_body, parse_json, parse_predict_body)

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


def dispatch(manager, method: str, path: str, body: bytes, pending: bool = False) -> tuple[int, "str | PendingPredict"]:
    """One REST request → (HTTP status, JSON text). Errors come back as ``{"error": ...}``.

    With ``pending=True`` a Predict that goes through the batcher comes back as a
    ``PendingPredict`` (status 200) instead of blocking until its batch has run."""
    try:
        return 200, _dispatch(manager, method, path, body, pending)
    except ServingError as err:
        return err.http_status, error_json(err.message)
    except Exception as err:  # noqa: BLE001 - the server keeps serving whatever happens
        log.exception("REST request failed")
        return 500, error_json(f"Internal error: {err}")


def _dispatch(manager, method: str, path: str, body: bytes, pending: bool = False):
    if method == "POST":
        m = POST_RE.fullmatch(path)
        if m and m.group(4) in ("classify", "regress", "predict"):
            name, version, label = unquote(m.group(1)), _version(m.group(2)), m.group(3)
            label = unquote(label) if label else None
            return _post(manager, m.group(4), name, version, label, body, pending)
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


def _post(manager, kind: str, name: str, version, label, body: bytes, pending: bool = False):
    doc = parse_json(body)
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
    from serving.tensors import dbg

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


class RestServer:
    """aiohttp on its own event loop thread.

    Concurrency model: one asyncio loop accepts and parses (keep-alive connections are cheap);
    inference runs inline on the loop when ``inference_threads == 0`` (no thread hand-off for
    small, CPU-bound models), or in a thread pool of that size (TF releases the GIL inside ops,
    so larger models overlap; needed for the REST deadline). ``bench/serving_bench.py`` measures
    both.
    """

    def __init__(self, manager, host: str = "127.0.0.1", port: int = 0, max_request_bytes: int = 64 << 20,
                 inference_threads: int = 0, enable_cors: bool = False, shutdown_timeout: float = 10.0,
                 timeout_seconds: float = 30.0, middlewares=()):
        self.manager, self.host, self.requested_port = manager, host, port
        self.middlewares = tuple(middlewares)  # e.g. serving.metrics.aiohttp_middleware
        self.max_request_bytes = max_request_bytes
        self.enable_cors = enable_cors
        self.shutdown_timeout = shutdown_timeout
        self.timeout_seconds = timeout_seconds
        self._executor = ThreadPoolExecutor(inference_threads, thread_name_prefix="rest-infer") \
            if inference_threads > 0 else None
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
            return web.Response(status=404, text=NOT_FOUND_HTML, content_type="text/html", headers=self._headers())
        if request.method == "OPTIONS":
            ok = ORIGIN_RE.match(request.headers.get("Origin", "") or "")
            return web.Response(status=200 if ok else 400, body=b"", content_type="application/json",
                                headers=self._headers())
        length = request.content_length
        if length is not None and length > self.max_request_bytes:
            return self._json(413, error_json(f"Request body of {length} bytes exceeds the limit of "
                                              f"{self.max_request_bytes} bytes"))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._json(413, error_json(f"Request body exceeds the limit of {self.max_request_bytes} bytes"))
        if self._executor is None:
            status, text = dispatch(self.manager, request.method, path, body, pending=True)
            if isinstance(text, PendingPredict):
                # Batched: the event loop keeps reading other requests meanwhile.
                try:
                    await asyncio.wait_for(asyncio.wrap_future(text.future), self.timeout_seconds)
                except asyncio.TimeoutError:
                    return self._json(504, error_json("Deadline Exceeded"))
                except Exception:  # noqa: BLE001 - finish() turns it into the error body
                    pass
                status, text = text.finish()
        else:
            work = asyncio.get_running_loop().run_in_executor(
                self._executor, dispatch, self.manager, request.method, path, body)
            try:
                # --rest_api_timeout_in_ms: the client gets 504; the model call itself finishes.
                status, text = await asyncio.wait_for(work, self.timeout_seconds)
            except asyncio.TimeoutError:
                status, text = 504, error_json("Deadline Exceeded")
        return self._json(status, text)

    def _json(self, status: int, text: str):
        from aiohttp import web

        return web.Response(status=status, text=text, content_type="application/json", headers=self._headers())

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
        self._loop = None


__all__ = ["RestServer", "dispatch"]
