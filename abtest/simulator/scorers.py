"""Scorers for the personalised policy, chosen by a URL-like spec.

- ``oracle``: the world's true appeal (the ceiling any model could reach);
- ``rest://HOST:PORT/MODEL`` / ``grpc://HOST:PORT/MODEL``: the served selling-point model's
  ``select_selling_points`` signature through ``serving.client`` (TF Serving or adpush's server);
- ``saved_model:PATH``: the same signature from a SavedModel loaded in this process.

The served model sees what production would send: the user's id and profile, their click history
as build-data writes it (from the world's logs, most recent first: the SF keywords they clicked
and the title tokens of the ads they clicked), the query text, and the ad's true attributes as
candidates. Rows are sent in batches; each (user, display context) is scored once per scenario.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from abtest.simulator.policies import OracleScorer
from abtest.world.world import PAD, PROFILE_FIELDS, World
from adpush_core.errors import UserError
from adpush_core.tfenv import import_tensorflow

SIGNATURE = "select_selling_points"
# The caps build-data writes (beam_pipelines.config.BuildConfig defaults).
HISTORY_LENGTH = 20
AD_HISTORY_TOKENS = 48
TITLE_TOKENS = 16


def _read(path: Path, columns: dict):
    import pyarrow.compute as pc
    from pyarrow import csv as pa_csv

    if not path.is_file():
        raise UserError(f"{path} not found: --logs must be a simulate-logs directory")
    table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(
        include_columns=list(columns), column_types=columns))
    if "clicked" in columns:
        table = table.filter(pc.equal(table["clicked"], 1))
    return table


def _most_recent(users: np.ndarray, items: list, n_users: int, take) -> np.ndarray:
    """Space-joined ``take(items of one user, oldest first)`` per user; users in file order."""
    history = np.full(n_users, "", dtype=object)
    order = np.argsort(users, kind="stable")          # file (time) order kept within a user
    users = users[order]
    items = [items[i] for i in order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if users.size else []
    ends = np.r_[starts[1:], users.size] if users.size else []
    for start, end in zip(starts, ends):
        if users[start] < n_users:
            history[users[start]] = " ".join(take(items[start:end]))
    return history


def sf_click_history(logs_dir: Path | None, n_users: int, length: int = HISTORY_LENGTH) -> np.ndarray:
    """Each user's most recent clicked SF keywords (space-joined, most recent first)."""
    if logs_dir is None:
        return np.full(n_users, "", dtype=object)
    table = _read(Path(logs_dir) / "sf_impressions.csv",
                  {"user_id": "int64", "sf_keyword": "string", "clicked": "int64"})
    return _most_recent(table["user_id"].to_numpy(), table["sf_keyword"].to_pylist(), n_users,
                        lambda kws: kws[::-1][:length])


def ad_title_history(logs_dir: Path | None, n_users: int,
                     length: int = AD_HISTORY_TOKENS) -> np.ndarray:
    """Each user's clicked ads' title tokens, most recent ad first, at most ``length`` tokens
    (what build-data writes as ``history_ad_title_tokens``)."""
    if logs_dir is None:
        return np.full(n_users, "", dtype=object)
    ads = _read(Path(logs_dir) / "ads.csv", {"ad_id": "int64", "title": "string"})
    titles = dict(zip(ads["ad_id"].to_pylist(), (t.split()[:TITLE_TOKENS] for t in ads["title"].to_pylist())))
    table = _read(Path(logs_dir) / "ad_impressions.csv",
                  {"user_id": "int64", "ad_id": "int64", "clicked": "int64"})

    def take(clicked_ads):
        tokens = []
        for ad in reversed(clicked_ads):
            if len(tokens) >= length:
                break
            tokens.extend(titles[ad])
        return tokens[:length]

    return _most_recent(table["user_id"].to_numpy(), table["ad_id"].to_pylist(), n_users, take)


@dataclass
class ModelScorer:
    """Scores through a ``select_selling_points`` callable: REST, gRPC or in-process."""

    world: World
    call: object                     # features dict -> {"scores": (N, A)}
    name: str
    history: np.ndarray
    title_history: np.ndarray | None = None
    input_names: tuple[str, ...] | None = None
    batch_size: int = 2048
    stats: dict = field(default_factory=lambda: {"rows": 0, "requests": 0, "seconds": 0.0})

    def features(self, users, queries, candidates) -> dict:
        profile = self.world.user_profile[users]
        keyword_names = np.append(self.world.keyword_names, "")   # PAD (-1) -> ""
        values = {
            "user_id": users.astype(str).astype(object),
            **{name: profile[:, i].astype(str).astype(object)
               for i, name in enumerate(PROFILE_FIELDS)},
            "history_sf_keywords": self.history[users],
            "history_ad_title_tokens": (self.title_history[users] if self.title_history is not None
                                        else np.full(users.size, "", dtype=object)),
            "query": self.world.query_texts[queries].astype(object),
            "candidate_selling_points": keyword_names[candidates].astype(object),
        }
        if self.input_names is not None:
            values = {k: v for k, v in values.items() if k in self.input_names}
        return values

    def score(self, users, queries, ads, candidates):
        out = np.full(candidates.shape, np.nan)
        start_time = time.perf_counter()
        for start in range(0, users.size, self.batch_size):
            rows = slice(start, start + self.batch_size)
            # drop all-padding columns so requests stay small
            width = int((candidates[rows] != PAD).sum(axis=1).max())
            batch = self.features(users[rows], queries[rows], candidates[rows, :width])
            scores = np.asarray(self.call(batch)["scores"], dtype=np.float64)
            out[rows, :width] = np.where(np.isfinite(scores), scores, np.nan)
            self.stats["requests"] += 1
        self.stats["rows"] += users.size
        self.stats["seconds"] += time.perf_counter() - start_time
        return out


def make_scorer(spec: str, world: World, logs_dir: Path | None = None):
    if spec == "oracle":
        return OracleScorer(world)
    history = sf_click_history(logs_dir, world.n_users)
    titles = ad_title_history(logs_dir, world.n_users)
    if spec.startswith(("rest://", "grpc://")):
        scheme, rest = spec.split("://", 1)
        try:
            address, model_name = rest.split("/", 1)
        except ValueError:
            raise UserError(f"scorer {spec!r}: expected {scheme}://HOST:PORT/MODEL") from None
        from serving.client import GrpcClient, RestClient

        client = (RestClient(f"http://{address}", model_name, timeout=60.0) if scheme == "rest"
                  else GrpcClient(address, model_name, timeout=60.0))
        client.wait_until_ready(timeout=60.0)
        return ModelScorer(world, lambda f: client.predict(f, SIGNATURE), f"served {scheme}",
                           history, titles, input_names=_served_inputs(client))
    if spec.startswith("saved_model:"):
        tf = import_tensorflow()
        path = spec.split(":", 1)[1]
        if not Path(path, "saved_model.pb").is_file():
            raise UserError(f"scorer {spec!r}: {path} holds no saved_model.pb")
        signature = tf.saved_model.load(path).signatures[SIGNATURE]
        names = tuple(signature.structured_input_signature[1])

        def call(features):
            tensors = {k: tf.constant(np.asarray(v.tolist())) for k, v in features.items()}
            return {k: v.numpy() for k, v in signature(**tensors).items()}

        return ModelScorer(world, call, "saved model", history, titles, input_names=names)
    raise UserError(f"unknown scorer {spec!r}: use oracle, rest://HOST:PORT/MODEL, "
                    f"grpc://HOST:PORT/MODEL or saved_model:PATH")


def _served_inputs(client) -> tuple[str, ...] | None:
    """The input names of the served ``select_selling_points`` (from the model's metadata), so
    the scorer sends only what the model reads (e.g. no ``user_id`` unless it uses it)."""
    try:
        return tuple(client.metadata()[SIGNATURE]["inputs"])
    except Exception:  # noqa: BLE001 - a server without metadata: send everything
        return None
