"""Shared embeddings for every cascade model (000 §III: "shared embeddings for all inputs").

One ``StringLookup`` + ``Embedding`` per vocabulary named in spec.json, so features that name the
same vocabulary (``item_id`` and ``hist_item_id``) share one table. Raw strings go in; nothing
outside the model needs to know the vocabularies.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from adpush_core.tfenv import import_tensorflow
from tfrs_models.input import DatasetSpec

tf = import_tensorflow()


@dataclasses.dataclass(frozen=True)
class InputLayout:
    """The serialisable part of a DatasetSpec that a model needs (plain dicts and lists)."""

    features: list[dict]        # [{"name", "dtype", "vocab", "group", "part", "max_length"}]
    vocabularies: dict[str, dict]  # {vocab: {"path", "size", "num_oov_buckets"}}
    sequence_length: int
    # {float feature: {"mean", "std"}} from the train split; SharedEmbeddings standardises with it.
    float_stats: dict[str, dict] = dataclasses.field(default_factory=dict)
    # {label: positive rate} on train (spec.json label_rates); the heads start at these rates.
    label_rates: dict[str, float] = dataclasses.field(default_factory=dict)
    train_rows: int = 0         # spec.json row_counts["train"]; scales the embedding prior

    @classmethod
    def from_spec(cls, spec: DatasetSpec, float_stats: dict | None = None,
                  exclude: tuple[str, ...] = ()) -> "InputLayout":
        """``exclude``: model features left out (ablations); an unknown name is a UserError."""
        from adpush_core.errors import UserError

        known = {f.name for f in spec.model_features()}
        unknown = sorted(set(exclude) - known)
        if unknown:
            raise UserError(f"exclude_features: {', '.join(unknown)} not among the model features "
                            f"({', '.join(sorted(known))})")
        features = [{"name": f.name, "dtype": f.dtype, "vocab": f.vocab, "group": f.group,
                     "part": f.part, "max_length": f.max_length, "kind": f.kind}
                    for f in spec.model_features() if f.name not in exclude]
        used = {f["vocab"] for f in features if f["vocab"]}
        vocabs = {n: {"path": str(v.path), "size": v.size, "num_oov_buckets": v.num_oov_buckets}
                  for n, v in spec.vocabularies.items() if n in used}
        rates = {k: float(v) for k, v in spec.label_rates.get("train", {}).items()}
        length = spec.sequence_length if any(f["part"] == "sequence" for f in features) else 0
        return cls(features=features, vocabularies=vocabs, sequence_length=length,
                   float_stats=dict(float_stats or {}), label_rates=rates,
                   train_rows=int(spec.row_counts.get("train", 0)))

    @property
    def has_sequence(self) -> bool:
        return self.sequence_length > 0


class SharedEmbeddings(tf.keras.layers.Layer):
    """Looks up every model feature and groups the embeddings the towers and encoders read.

    Call returns a dict:
      ``fields``    [B, F, D]  embeddings of the F categorical context features (spec order); a
                               token-bag feature (``kind`` varlen, e.g. the candidate's
                               ``title_tokens``) is the mean of its real tokens' embeddings
                               (zeros if it has none), as 001's Eq. (4) pools a bag;
      ``dense``     [B, F_d]   float context features, standardised, then the history summary
                               (F_d may be 0);
      ``candidate`` [B, D_c]   concat of the ``item``-group embeddings (the attention query);
      ``profile``   [B, D_p]   concat of the ``user_profile`` group (``user`` if there is none);
      ``sequence``  [B, L, E]  per-event concat of the feature-list embeddings, standardised
                               floats and the match channels (padded events are zeroed by the
                               encoders, not here);
      ``mask``      [B, L]     True for real events (``hist`` id != "").
    For a flat dataset (no feature lists) ``sequence`` is ``fields`` and ``mask`` is all True,
    as 000 runs its 1D convolution over the stacked field embeddings of Ali-CCP.

    Target-aware history inputs (on by default; how the world's local context reaches a tower):

    * match channels (``history_matches``): for each feature list that names the vocabulary of
      a candidate feature (``hist_item_id``/``item_id``, ``hist_category``/``category``), a 0/1
      channel per event "this event's id equals the candidate's" (raw strings, so two OOV ids
      match only if they are the same id). An embedding concat cannot express equality for a
      convolution or an MLP to read, and a softmax attention loses how many events matched.
    * history summary (``history_summary``): for each small-vocabulary feature list (the
      behaviour: pv/cart/fav/buy) × {any event, same item, same category} × {last
      ``SUMMARY_RECENT`` events, whole history}: log1p(count), and the standardised time gap of
      the most recent such event (``SUMMARY_NONE`` if there is none). Appended to ``dense``.
    * time-decayed history (``history_decay``, needs the summary and a time-gap feature list):
      for the same behaviour × {any, same item, same category} channels, over {the events since
      the ``SUMMARY_RECENT``-th latest view (``VIEW_TOKEN``) — the last views and the actions
      that followed them —, the whole history}: ``Σ_j hit_j · 2^(−age_j / h)`` with ``age_j``
      the event's age in hours (``expm1`` of the raw ``log1p`` seconds gap) and one learnt
      half-life ``h = exp(θ)`` per channel (started at ``DECAY_INIT_HOURS``). A count cannot
      say that yesterday's cart weighs less than this hour's; this is the form in which a
      local-context term such as the world's ``Σ recent same-category clicks · 0.5^(age/h)``
      enters a click logit (linearly), so a tower can express it exactly. Appended to ``dense``.

    ``embedding_l2`` adds ``λ·Σ‖e‖²/B`` over the rows a training batch looks up (mini-batch
    aware L2: a rare id shrinks no faster than its data pulls it away), as a layer loss.
    """

    SUMMARY_RECENT = 5
    SUMMARY_NONE = 3.0        # "no such event": three standard deviations beyond the mean gap
    SUMMARY_MAX_VOCAB = 16    # feature lists with at most this many tokens get summary counts
    VIEW_TOKEN = "pv"         # the behaviour token of a view (Taobao UserBehavior and the world)
    DECAY_INIT_HOURS = 24.0   # initial half-life of every decayed channel (learnt)

    def __init__(self, layout: dict, embedding_dim: int = 8, history_matches: bool = True,
                 history_summary: bool = True, embedding_l2: float = 0.0,
                 field_interactions: bool = False, history_decay: bool = True,
                 embedding_prior: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.layout = layout if isinstance(layout, dict) else dataclasses.asdict(layout)
        self.embedding_dim = embedding_dim
        self.history_matches, self.history_summary = history_matches, history_summary
        self.history_decay = history_decay
        self.field_interactions = field_interactions
        self.embedding_l2 = embedding_l2
        self.embedding_prior = embedding_prior
        self._lookups, self._tables = {}, {}
        for name, v in sorted(self.layout["vocabularies"].items()):
            self._lookups[name] = tf.keras.layers.StringLookup(
                vocabulary=v["path"], mask_token="", num_oov_indices=v["num_oov_buckets"],
                name=f"lookup_{name}")
            self._tables[name] = tf.keras.layers.Embedding(
                v["size"] + v["num_oov_buckets"] + 1, embedding_dim, name=f"embedding_{name}")
        feats = self.layout["features"]
        self.context_categorical = [f for f in feats if f["part"] != "sequence" and f["vocab"]]
        self.context_dense = [f for f in feats if f["part"] != "sequence" and not f["vocab"]]
        self.sequence_features = [f for f in feats if f["part"] == "sequence"]
        self.has_sequence = bool(self.sequence_features)
        groups = {f["group"] for f in self.context_categorical}
        profile_group = "user_profile" if "user_profile" in groups else "user"
        self.profile_names = [f["name"] for f in self.context_categorical if f["group"] == profile_group]
        self.candidate_names = [f["name"] for f in self.context_categorical if f["group"] == "item"]
        candidate_by_vocab = {f["vocab"]: f["name"] for f in self.context_categorical
                              if f["group"] == "item"}
        # (feature list, candidate feature) pairs naming one vocabulary, in spec order.
        self.match_pairs = [(f["name"], candidate_by_vocab[f["vocab"]])
                            for f in self.sequence_features if f["vocab"] in candidate_by_vocab]
        matched = {seq for seq, _ in self.match_pairs}
        self.kind_features = [f for f in self.sequence_features
                              if f["vocab"] and f["name"] not in matched
                              and self.layout["vocabularies"][f["vocab"]]["size"] <= self.SUMMARY_MAX_VOCAB]
        self.gap_feature = next((f for f in self.sequence_features if not f["vocab"]), None)
        # Track the per-vocab layers as attributes so they are saved.
        self.lookup_layers = [self._lookups[n] for n in sorted(self._lookups)]
        self.embedding_layers = [self._tables[n] for n in sorted(self._tables)]

    @property
    def summary_size(self) -> int:
        """Width of the history summary appended to ``dense`` (0 when off or not applicable)."""
        if not (self.history_summary and self.has_sequence and self.kind_features):
            return 0
        kinds = sum(self._kind_size(f) for f in self.kind_features)
        per_kind = (1 + len(self.match_pairs)) * (2 + (self.gap_feature is not None))
        return kinds * per_kind + self.decay_size

    @property
    def decay_size(self) -> int:
        """Number of time-decayed channels (part of the summary; 0 when off)."""
        if not (self.history_decay and self.history_summary and self.has_sequence
                and self.kind_features and self.gap_feature is not None):
            return 0
        kinds = sum(self._kind_size(f) for f in self.kind_features)
        return kinds * (1 + len(self.match_pairs)) * 2

    def build(self, input_shape):
        if self.decay_size:
            # θ of h = exp(θ) hours, one per decayed channel, in _summary's order.
            self.log_half_life = self.add_weight(
                name="log_half_life_hours", shape=(self.decay_size,),
                initializer=tf.keras.initializers.Constant(np.log(self.DECAY_INIT_HOURS)))
        super().build(input_shape)

    def half_lives_hours(self) -> np.ndarray:
        """The learnt half-life of every decayed channel, hours (empty when off)."""
        return np.exp(self.log_half_life.numpy()) if self.decay_size else np.zeros(0)

    def _kind_size(self, feature: dict) -> int:
        v = self.layout["vocabularies"][feature["vocab"]]
        return v["size"] + v["num_oov_buckets"]

    def _standardise(self, feature: dict, value):
        """(x − mean) / std with the train statistics of the layout (identity without them)."""
        stats = self.layout.get("float_stats", {}).get(feature["name"])
        value = tf.cast(value, tf.float32)
        if stats is None:
            return value
        return (value - stats["mean"]) / stats["std"]

    def _embed(self, feature: dict, value, training=None, mask=None):
        ids = self._lookups[feature["vocab"]](value)
        embedded = self._tables[feature["vocab"]](ids)
        if training and self.embedding_l2 > 0:
            squares = tf.reduce_sum(tf.square(embedded), axis=-1)
            if mask is not None:
                squares = squares * tf.cast(mask, squares.dtype)
            batch = tf.cast(tf.shape(embedded)[0], tf.float32)
            self.add_loss(self.embedding_l2 * tf.reduce_sum(squares) / batch)
        return ids, embedded

    def _summary(self, features, mask, matches, ids_of):
        """The history summary [B, S] (see the class docstring)."""
        length = tf.shape(mask)[1]
        recent = tf.range(length) >= length - self.SUMMARY_RECENT                  # [L]
        windows = [mask, mask & recent[tf.newaxis, :]]
        scopes = [mask] + matches                                                    # each [B, L]
        gap = None
        if self.gap_feature is not None:
            gap = self._standardise(self.gap_feature, features[self.gap_feature["name"]])
        parts = []
        for f in self.kind_features:
            # Lookup ids: 0 padding, then OOV, then the vocabulary; padding one-hots to zeros.
            kinds = tf.one_hot(ids_of[f["name"]] - 1, self._kind_size(f)) > 0.5            # [B, L, K]
            for scope in scopes:
                hit = kinds & scope[..., tf.newaxis]                                        # [B, L, K]
                for window in windows:
                    count = tf.reduce_sum(tf.cast(hit & window[..., tf.newaxis], tf.float32), axis=1)
                    parts.append(tf.math.log1p(count))                                      # [B, K]
                if gap is not None:
                    latest = tf.reduce_min(tf.where(hit, gap[..., tf.newaxis], 1e9), axis=1)
                    parts.append(tf.where(latest > 1e8, self.SUMMARY_NONE, latest))         # [B, K]
        if self.decay_size:
            parts.append(self._decayed(features, mask, scopes, ids_of))
        return tf.concat(parts, axis=-1)

    def _decayed(self, features, mask, scopes, ids_of):
        """The time-decayed history channels [B, decay_size] (see the class docstring)."""
        raw_gap = tf.cast(features[self.gap_feature["name"]], tf.float32)          # log1p(seconds)
        age_hours = tf.math.expm1(tf.maximum(raw_gap, 0.0)) / 3600.0                # [B, L]
        # Views strictly after each event: an event is in the recent window when fewer than
        # SUMMARY_RECENT views follow it (a view itself, or an action after one of those views).
        view = tf.equal(features[self.kind_features[0]["name"]], self.VIEW_TOKEN) & mask
        views_after = tf.cumsum(tf.cast(view, tf.int32), axis=1, exclusive=True, reverse=True)
        windows = [mask & (views_after < self.SUMMARY_RECENT), mask]
        rate = np.log(2.0) * tf.exp(-self.log_half_life)                            # [C] per hour
        sums, offset = [], 0
        for f in self.kind_features:
            size = self._kind_size(f)
            kinds = tf.one_hot(ids_of[f["name"]] - 1, size) > 0.5
            for scope in scopes:
                for window in windows:
                    hit = tf.cast(kinds & (scope & window)[..., tf.newaxis], tf.float32)  # [B, L, K]
                    decay = tf.exp(-age_hours[..., tf.newaxis] * rate[offset:offset + size])
                    sums.append(tf.reduce_sum(hit * decay, axis=1))                          # [B, K]
                    offset += size
        return tf.concat(sums, axis=-1)

    def _embed_context(self, feature: dict, value, training=None):
        """[B, D]: a scalar feature's embedding, or the mean over a token bag's real tokens."""
        if feature.get("kind", "scalar") == "scalar":
            return self._embed(feature, value, training)[1]
        real = tf.not_equal(value, "")                                               # [B, T]
        embedded = self._embed(feature, value, training, real)[1]                    # [B, T, D]
        weight = tf.cast(real, embedded.dtype)[..., tf.newaxis]
        count = tf.maximum(tf.reduce_sum(weight, axis=1), 1.0)                       # [B, 1]
        return tf.reduce_sum(embedded * weight, axis=1) / count

    def call(self, features, training=None):
        embedded = {f["name"]: self._embed_context(f, features[f["name"]], training)
                    for f in self.context_categorical}
        fields = tf.stack([embedded[f["name"]] for f in self.context_categorical], axis=1)
        batch = tf.shape(fields)[0]
        if self.context_dense:
            dense = tf.stack([self._standardise(f, features[f["name"]]) for f in self.context_dense], 1)
        else:
            dense = tf.zeros([batch, 0], tf.float32)
        out = {
            "fields": fields,
            "candidate": tf.concat([embedded[n] for n in self.candidate_names], axis=-1),
            # Without any user feature (all excluded) PEG's generator reads a constant.
            "profile": (tf.concat([embedded[n] for n in self.profile_names], axis=-1)
                        if self.profile_names else tf.ones([batch, 1], tf.float32)),
        }
        if self.has_sequence:
            first = next((f for f in self.sequence_features if f["vocab"]), None)
            mask = tf.not_equal(features[first["name"]], "") if first is not None else None
            steps, ids_of = [], {}
            for f in self.sequence_features:
                value = features[f["name"]]
                if f["vocab"]:
                    ids_of[f["name"]], step = self._embed(f, value, training, mask)
                    steps.append(step)
                else:
                    steps.append(self._standardise(f, value)[..., tf.newaxis])
            matches = [tf.equal(features[seq], features[cand][:, tf.newaxis]) & mask
                       for seq, cand in self.match_pairs]
            if self.history_matches:
                steps += [tf.cast(m, tf.float32)[..., tf.newaxis] for m in matches]
            out["sequence"] = tf.concat(steps, axis=-1)
            out["mask"] = mask
            if self.summary_size:
                dense = tf.concat([dense, self._summary(features, mask, matches, ids_of)], axis=-1)
        else:
            out["sequence"] = fields
            out["mask"] = tf.ones(tf.shape(fields)[:2], tf.bool)
        if self.field_interactions and len(self.context_categorical) > 1:
            n = len(self.context_categorical)
            rows, cols = np.triu_indices(n, 1)
            gram = tf.reshape(tf.matmul(fields, fields, transpose_b=True), [-1, n * n])  # [B, F²]
            dense = tf.concat([dense, tf.gather(gram, rows * n + cols, axis=1)], axis=-1)
        out["dense"] = dense
        if training and self.embedding_prior > 0:
            # A Gaussian prior on every row of every table, once per step on the mean-loss scale
            # (λ·Σ‖E‖²/N_train): an id seen in few rows is pulled to 0 by its data, not by how
            # often a batch happens to look it up (the selling-point family's rule, issue 13).
            rows = float(max(int(self.layout.get("train_rows") or 0), 1))
            self.add_loss(self.embedding_prior / rows * tf.add_n(
                [tf.reduce_sum(tf.square(t.embeddings)) for t in self.embedding_layers]))
        return out

    def get_config(self):
        return {**super().get_config(), "layout": self.layout, "embedding_dim": self.embedding_dim,
                "history_matches": self.history_matches, "history_summary": self.history_summary,
                "embedding_l2": self.embedding_l2, "field_interactions": self.field_interactions,
                "embedding_prior": self.embedding_prior,
                "history_decay": self.history_decay}
