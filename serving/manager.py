"""Model versions on disk → loaded servables, as TF Serving's ServerCore does it.

* A child of a model's base path is a version iff its name is an integer (hidden temp dirs of
  ``serving.publish`` are ignored); one without ``saved_model.pb`` yet is half written and is
  ignored until it is complete.
* Version policies ``latest {num_versions}`` (default 1), ``all {}``, ``specific {versions}``;
  labels map to versions (a label must point at an AVAILABLE version).
* Availability-preserving: a new version is loaded and warmed up fully before it is switched on
  and the unaspired old one is unloaded, so requests never see a gap. Requests that already hold
  the old servable finish on it.
* A version that fails to load is reported ``END`` with its error in model status and the
  server keeps serving; the load is retried up to ``max_num_load_retries`` times,
  ``load_retry_interval_seconds`` apart (TF Serving's defaults: 5, 60 s), on later polls.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from serving.errors import Code, ServingError

log = logging.getLogger(__name__)
_VERSION_RE = re.compile(r"^\d+$")
INT64_MAX = 2**63 - 1


@dataclass
class ModelConfig:
    """One ``model_config_list.config`` entry."""

    name: str
    base_path: str
    policy: str = "latest"            # latest | all | specific
    num_versions: int = 1
    versions: tuple[int, ...] = ()
    version_labels: dict[str, int] = field(default_factory=dict)


@dataclass
class VersionStatus:
    version: int
    state: str                      # LOADING | AVAILABLE | UNLOADING | END
    error_code: Code = Code.OK
    error_message: str = ""


def parse_model_config_text(text: str, base_dir: str | None = None) -> list[ModelConfig]:
    """A text-proto ``ModelServerConfig`` → ModelConfigs (TF Serving's validation messages)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, cfg)
    except text_format.ParseError as err:
        raise ValueError(f"Error parsing text-format tensorflow.serving.ModelServerConfig: {err}") from err
    if cfg.WhichOneof("config") != "model_config_list":
        raise ValueError("ModelServerConfig must contain model_config_list")
    out, seen = [], set()
    for c in cfg.model_config_list.config:
        if c.name in seen:
            raise ValueError(f"Illegal to list model {c.name} multiple times in config list")
        seen.add(c.name)
        if not c.model_platform:
            raise ValueError("Illegal setting neither ModelServerConfig::model_platform nor platform_config_map")
        if c.model_platform != "tensorflow":
            raise ValueError(f"Model platform {c.model_platform} not supported (only 'tensorflow')")
        policy = c.model_version_policy.WhichOneof("policy_choice") or "latest"
        base_path = c.base_path
        if base_dir and not os.path.isabs(base_path):
            base_path = os.path.join(base_dir, base_path)
        out.append(ModelConfig(
            name=c.name, base_path=base_path, policy=policy,
            num_versions=max(c.model_version_policy.latest.num_versions, 1),
            versions=tuple(c.model_version_policy.specific.versions),
            version_labels=dict(c.version_labels)))
    abs_flags = {os.path.isabs(c.base_path) for c in cfg.model_config_list.config}
    if len(abs_flags) > 1:
        raise ValueError("Expected model base paths to be either all absolute or all relative")
    return out


class _Model:
    def __init__(self, config: ModelConfig):
        self.config = config
        self.servables: dict[int, object] = {}
        self.status: dict[int, VersionStatus] = {}
        self.failures: dict[int, tuple[int, float]] = {}   # version → (failed attempts, last time)


class ModelManager:
    """Loads, swaps and serves model versions; ``poll()`` once, or ``start()`` a poll thread."""

    def __init__(self, configs: Iterable[ModelConfig], poll_wait_seconds: float = 1.0,
                 enable_warmup: bool = True, allow_labels_for_unavailable: bool = False,
                 max_num_load_retries: int = 5, load_retry_interval_seconds: float = 60.0,
                 batcher=None):
        self.batcher = batcher             # serving.batching.BatchScheduler shared by every servable
        self._models = {c.name: _Model(c) for c in configs}
        self.poll_wait_seconds = poll_wait_seconds
        self.enable_warmup = enable_warmup
        self.allow_labels_for_unavailable = allow_labels_for_unavailable
        self.max_num_load_retries = max_num_load_retries
        self.load_retry_interval_seconds = load_retry_interval_seconds
        self._lock = threading.Lock()      # guards the dicts; loads happen outside it
        self._poll_lock = threading.Lock()  # one poll at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- versions on disk -----------------------------------------------------------------
    @staticmethod
    def versions_on_disk(base_path: str) -> dict[int, Path]:
        base = Path(base_path)
        found: dict[int, Path] = {}
        if not base.is_dir():
            return found
        for child in sorted(base.iterdir()):
            if not child.is_dir() or not _VERSION_RE.match(child.name):
                continue
            number = int(child.name)
            if number > INT64_MAX:
                continue
            if not ((child / "saved_model.pb").exists() or (child / "saved_model.pbtxt").exists()):
                continue  # half written (or not a SavedModel yet): look again next poll
            found[number] = child
        return found

    @staticmethod
    def aspired(config: ModelConfig, on_disk: dict[int, Path]) -> set[int]:
        if config.policy == "all":
            return set(on_disk)
        if config.policy == "specific":
            return set(config.versions) & set(on_disk)
        return set(sorted(on_disk)[-config.num_versions:])

    # -- loading ---------------------------------------------------------------------------
    def poll(self) -> None:
        """One pass: load newly aspired versions (fully, with warm-up), then unload the rest."""
        with self._poll_lock:
            for model in list(self._models.values()):
                self._poll_model(model)

    def _poll_model(self, model: _Model) -> None:
        from serving.servable import Servable

        cfg = model.config
        on_disk = self.versions_on_disk(cfg.base_path)
        aspired = self.aspired(cfg, on_disk)
        for version in sorted(aspired, reverse=True):
            with self._lock:
                if version in model.status and not self._retry_due(model, version):
                    continue   # loaded, or failed and not due for a retry
                model.status[version] = VersionStatus(version, "LOADING")
            try:
                servable = Servable(cfg.name, version, on_disk[version])
                servable.batcher = self.batcher
                if self.enable_warmup:
                    servable.warm_up()
            except Exception as err:  # noqa: BLE001 - a bad version must not take the server down
                code = err.code if isinstance(err, ServingError) else Code.UNKNOWN
                message = err.message if isinstance(err, ServingError) else str(err)
                log.warning("model %s version %s failed to load: %s", cfg.name, version, message)
                with self._lock:
                    model.status[version] = VersionStatus(version, "END", code, message)
                    attempts = model.failures.get(version, (0, 0.0))[0] + 1
                    model.failures[version] = (attempts, time.monotonic())
                continue
            with self._lock:
                model.failures.pop(version, None)
                model.servables[version] = servable
                model.status[version] = VersionStatus(version, "AVAILABLE")
            log.info("model %s version %s is AVAILABLE", cfg.name, version)
        # Unload what is no longer aspired, but never the last available version while no
        # aspired one is available (availability preserving).
        with self._lock:
            available_aspired = [v for v in model.servables if v in aspired]
            for version in sorted(model.servables):
                if version in aspired:
                    continue
                if not available_aspired and len(model.servables) == 1:
                    continue
                del model.servables[version]
                model.status[version] = VersionStatus(version, "END")
                log.info("model %s version %s unloaded", cfg.name, version)
            for version, st in list(model.status.items()):
                # A failed version that left the disk is forgotten, so re-exporting it retries.
                if st.state == "END" and version not in on_disk and version not in model.servables:
                    if st.error_code != Code.OK:
                        del model.status[version]
                        model.failures.pop(version, None)

    def _retry_due(self, model: _Model, version: int) -> bool:
        st = model.status[version]
        if st.state != "END" or st.error_code == Code.OK or version not in model.failures:
            return False
        attempts, last = model.failures[version]
        return (attempts <= self.max_num_load_retries
                and time.monotonic() - last >= self.load_retry_interval_seconds)

    def start(self) -> None:
        """Initial load (blocking, as ServerCore::Create), then poll in a thread if wait > 0."""
        self.poll()
        if self.poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="model-poll", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_wait_seconds):
            try:
                self.poll()
            except Exception:  # noqa: BLE001
                log.exception("model poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def unavailable_models(self) -> list[str]:
        with self._lock:
            return [name for name, m in self._models.items() if not m.servables]

    # -- lookups ---------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return list(self._models)

    def get(self, name: str, version: int | None = None, label: str | None = None):
        """The servable for Latest(name), Specific(name, v) or a label; ServingError otherwise."""
        with self._lock:
            model = self._models.get(name)
            if label:
                labels = model.config.version_labels if model else {}
                if label not in labels:
                    raise ServingError(Code.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
                version = labels[label]
            if model is None or not model.servables:
                what = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: {what}")
            if version is None:
                return model.servables[max(model.servables)]
            servable = model.servables.get(int(version))
            if servable is None:
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})")
            return servable

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        with self._lock:
            model = self._models.get(name)
            if model is None or not model.status:
                raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
            if version is not None:
                st = model.status.get(int(version))
                if st is None:
                    raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
                return [st]
            return [model.status[v] for v in sorted(model.status)]
