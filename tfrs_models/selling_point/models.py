"""BM, MTDL and AMTDL of 001 as one ``tfrs.models.Model`` configured by ``ModelConfig.model``.

- BM (Eq. 4–9): user (``user`` + ``history`` groups), query and SF keyword bags, each
  mean-pooled (Eq. 4) → concatenated (Eq. 5) → MLP (Eq. 6–7) → sigmoid (Eq. 8), BCE (Eq. 9).
- MTDL (Eq. 10–15): hard sharing — one embedding table per vocabulary and the MLP are shared by
  the SF main task and the ad-click auxiliary task; each task has its own output layer; the ad
  title is pooled by ``TitleAttentionPooling`` personalised by user and query (Eq. 11–13).
- AMTDL: MTDL plus the ``user_profile`` and ``query_extra`` groups, each pooled within its group.

Since issue 13 (``ModelConfig``): explicit candidate × group crosses (``interactions``: FM-style
dot products into the output layer, or a DCN-v2 ``tfrs.layers.dcn.Cross`` on the MLP input);
the ad head also reads the ad id, category and position; output biases start at the train
base-rate logit; ``user_id`` is left out unless ``use_user_id``.

The defaults follow the world's click model (``abtest/world/world.py``: logit = bias +
θ_u·φ_v + popularity_v + query-facet term, the ad title seeing the same appeal): ONE token
embedding φ shared by the candidate keyword, the history keywords and the ad title tokens (the
tie that lets ad clicks train φ), a per-keyword bias ``b_v`` shared by the SF logit and the
attention-weighted title, one dot ``w_g·<φ_v, e_g>`` per pooled group (w_g from 1), history
features pooled one by one, a Gaussian prior on every embedding row, and no MLP (it overfit on
validation) — ~17 parameters per keyword instead of a field-aware model's ~96.

Feature names come from spec.json groups (docs/contracts.md §5); vocabulary lookups live inside
the model, so it takes raw string features and exports for serving as is.
"""
from __future__ import annotations

import dataclasses

import tensorflow_recommenders as tfrs

from adpush_core.errors import UserError
from adpush_core.tfenv import import_tensorflow
from tfrs_models.input import DataSpec, FeatureSpec
from tfrs_models.layers.appeal_title_pooling import AppealTitlePooling
from tfrs_models.layers.candidate_dot_interactions import CandidateDotInteractions
from tfrs_models.layers.mean_bag_pooling import MeanBagPooling
from tfrs_models.layers.title_attention_pooling import TitleAttentionPooling
from tfrs_models.selling_point.config import ModelConfig

tf = import_tensorflow()

SF, AD = "sf", "ad_click"
OUTPUT_NAMES = {SF: "p_sf_click", AD: "p_ad_click"}


def _groups(config: ModelConfig):
    user = ("user", "history") + (("user_profile",) if config.name == "amtdl" else ())
    query = ("query",) + (("query_extra",) if config.name == "amtdl" else ())
    return user, query


class SellingPointModel(tfrs.models.Model):
    """The 001 family. ``call(features)`` returns ``{"p_sf_click": [B]}`` for SF features and/or
    ``{"p_ad_click": [B]}`` for ad-click features (``title_tokens`` present) — raw strings in.

    Args:
        spec: the data spec (vocabulary files and feature groups).
        config: architecture.
    """

    def __init__(self, spec: DataSpec, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.spec = spec
        user_groups, query_groups = _groups(config)
        self.group_order = {"user": user_groups, "query": query_groups}
        # Features per task and side, read from spec.json — never listed by hand.
        self.task_features: dict[str, dict[str, list[FeatureSpec]]] = {}
        tasks = (SF, AD) if config.multi_task else (SF,)
        known = {n for task in tasks for n, f in spec.dataset(task).features.items()
                 if f.role == "feature"}
        unknown = sorted(set(config.exclude_features) - known)
        if unknown:  # a typo would otherwise train with the feature silently kept
            raise UserError(f"exclude_features: {', '.join(unknown)} not among the model features "
                            f"of {spec.root}/spec.json ({', '.join(sorted(known))})")
        excluded = set(config.excluded)
        self.ad_context_features: list[FeatureSpec] = []
        for task in tasks:
            ds = spec.dataset(task)

            def kept(groups, ds=ds):
                return [f for f in ds.model_features(groups) if f.name not in excluded]

            item = kept(("item",))
            if task == AD:
                # Eq. (11)–(13): the ad is represented by its attention-pooled title bag(s);
                # its id, category and position go to the ad head (``ad_context``).
                if config.ad_context:
                    self.ad_context_features = [f for f in item if not f.is_varlen] + kept(
                        ("context",))
                item = [f for f in item if f.is_varlen]
            self.task_features[task] = {
                **{g: kept((g,)) for g in user_groups + query_groups},
                "item": item}
            if task == AD:
                self.task_features[task]["ad_context"] = self.ad_context_features
        vocab_names = sorted({f.vocab for sides in self.task_features.values()
                              for feats in sides.values() for f in feats if f.vocab})
        self.lookups = {}
        self.embeddings = {}
        for name in vocab_names:
            vocab = spec.vocabularies[name]
            lookup = tf.keras.layers.StringLookup(
                vocabulary=vocab.path, mask_token="", num_oov_indices=vocab.num_oov_buckets,
                name=f"lookup_{name}")
            self.lookups[name] = lookup
            init = (tf.keras.initializers.RandomNormal(stddev=config.embedding_init_std,
                                                       seed=len(self.embeddings))
                    if config.embedding_init_std > 0 else "uniform")
            self.embeddings[name] = tf.keras.layers.Embedding(
                lookup.vocabulary_size(), config.embedding_dim, embeddings_initializer=init,
                name=f"embedding_{name}")
        self.mean_pooling = MeanBagPooling(name="mean_bag_pooling")
        layers = []
        for units in config.hidden_units:
            if config.dropout:
                layers.append(tf.keras.layers.Dropout(config.dropout, seed=len(layers)))
            layers.append(tf.keras.layers.Dense(units, activation="relu"))
        self.shared_mlp = tf.keras.Sequential(layers, name="shared_mlp")
        self.cross = None
        if config.interactions == "cross":
            self.cross = [tfrs.layers.dcn.Cross(name=f"cross_{i}")
                          for i in range(max(1, config.cross_layers))]
        self.dot_interactions = (CandidateDotInteractions(name="candidate_dot_interactions")
                                 if config.interactions == "dot" else None)
        self._penalties = None  # a list while task_loss collects the looked-up embedding L2
        # Output biases start at the train base-rate logit: the first steps then learn the
        # ranking rather than the click rate (a head at logit 0 predicts 50% against ~4%).
        self.item_bias = None
        if config.item_bias:
            vocab = next(f.vocab for f in self.task_features[SF]["item"])
            self.item_bias = tf.keras.layers.Embedding(
                self.lookups[vocab].vocabulary_size(), 1, embeddings_initializer="zeros",
                name=f"item_bias_{vocab}")
            self.item_bias_vocab = vocab
        # w_g of the candidate × group dots start at 1 (an FM's pairwise term): with Glorot
        # weights of either sign the dots of two near-zero embeddings sit at a saddle.
        self.sf_dot_weights = self.ad_dot_weights = None
        if self.dot_interactions is not None:
            self.sf_dot_weights = tf.keras.layers.Dense(1, use_bias=False, kernel_initializer="ones",
                                                        name="sf_dot_weights")
            if config.multi_task and config.title_pooling == "attention":
                self.ad_dot_weights = tf.keras.layers.Dense(
                    1, use_bias=False, kernel_initializer="ones", name="ad_dot_weights")
        self.sf_output = tf.keras.layers.Dense(
            1, name="sf_output",
            bias_initializer=tf.keras.initializers.Constant(base_rate_logit(spec, SF)))
        self.sf_task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(reduction=tf.keras.losses.Reduction.SUM))
        if config.multi_task:
            self.title_attention = (
                TitleAttentionPooling(config.attention_units, name="title_attention")
                if config.title_pooling == "attention"
                else AppealTitlePooling(name="appeal_title_pooling"))
            self.ad_output = tf.keras.layers.Dense(
                1, name="ad_output",
                bias_initializer=tf.keras.initializers.Constant(base_rate_logit(spec, AD)))
            self.ad_task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.BinaryCrossentropy(reduction=tf.keras.losses.Reduction.SUM))
        # Each task's step loss, averaged over an epoch's steps that had its rows (``fit``
        # resets model metrics at every epoch start); float64 as the history's means.
        self.task_loss_means = {t: tf.keras.metrics.Mean(name=f"loss_{t}", dtype=tf.float64)
                                for t in tasks}

    def get_config(self):
        """Enough to rebuild: ``SellingPointModel(load_spec(data_dir), ModelConfig(**model))``."""
        return {"data_dir": self.spec.root, "model": dataclasses.asdict(self.config)}

    # -- encoding -----------------------------------------------------------------------------
    def _ids(self, feature: FeatureSpec, values):
        """Raw values ``[B]`` or ``[B, L]`` → vocabulary ids ``[B, L]`` (0 = padding)."""
        if values.dtype != tf.string:
            values = tf.strings.as_string(values)
        if not feature.is_varlen:
            values = tf.reshape(values, [-1, 1])
        return self.lookups[feature.vocab](values)

    def _embed(self, feature: FeatureSpec, values):
        """Raw values ``[B]`` or ``[B, L]`` → (embeddings ``[B, L, D]``, mask ``[B, L]``)."""
        ids = self._ids(feature, values)
        embeddings, mask = self.embeddings[feature.vocab](ids), tf.not_equal(ids, 0)
        if self._penalties is not None:
            self._penalties.append(tf.reduce_sum(
                tf.square(embeddings) * tf.cast(mask, embeddings.dtype)[..., tf.newaxis]))
        return embeddings, mask

    def _pool_group(self, features_spec, features):
        """Mean of all real items of all features of one group (Eq. 4) → ``[B, D]``."""
        embedded = [self._embed(f, features[f.name]) for f in features_spec]
        embeddings = tf.concat([e for e, _ in embedded], axis=1)
        mask = tf.concat([m for _, m in embedded], axis=1)
        return self.mean_pooling(embeddings, mask)

    def _pooled(self, group, features_spec, features):
        """The pooled vectors of one group: one, or one per feature for the history group
        under ``history_pooling="per_feature"``."""
        if group == "history" and self.config.history_pooling == "per_feature":
            return [self._pool_group([f], features) for f in features_spec]
        return [self._pool_group(features_spec, features)]

    def _groups(self, task, features):
        """``(user groups, query groups)``: lists of pooled ``[B, D]`` vectors, one per group
        the task has features for (Eq. 4, within each group)."""
        sides = self.task_features[task]
        return tuple([v for g in self.group_order[side] if sides[g]
                      for v in self._pooled(g, sides[g], features)] for side in ("user", "query"))

    def _bias(self, feature: FeatureSpec, values):
        """``[B, L]`` per-token biases ``b_v`` (0 on padding) and the mask."""
        ids = self._ids(feature, values)
        return self.item_bias(ids)[..., 0], tf.not_equal(ids, 0)

    def _user_query(self, task, features):
        batch = tf.shape(next(iter(features.values())))[0]
        users, queries = self._groups(task, features)

        def side(pooled):
            return tf.concat(pooled, axis=1) if pooled else tf.zeros([batch, 0])

        return side(users), side(queries)

    def _hidden(self, groups, item, training):
        """Shared part: ``x = [groups…, item]`` (Eq. 5), DCN-v2 crosses if configured, MLP."""
        x = tf.concat(groups + [item], axis=1)
        if self.cross is not None:
            x0 = x
            for layer in self.cross:
                x = layer(x0, x)
        return self.shared_mlp(x, training=training)

    def _dots(self, candidate, groups):
        """FM-style ``<candidate, group>`` per group (``interactions="dot"``), else nothing."""
        if self.dot_interactions is None or not groups:
            return []
        return [self.dot_interactions(candidate, groups)]

    def predict_sf(self, features, training=False):
        """``p_sf_click`` ``[B]`` from raw SF features (Eq. 4–8)."""
        users, queries = self._groups(SF, features)
        groups = users + queries
        keyword = self._pool_group(self.task_features[SF]["item"], features)
        logit = tf.squeeze(self.sf_output(self._hidden(groups, keyword, training)), axis=-1)
        if self.item_bias is not None and self.dot_interactions is not None:
            feature = self.task_features[SF]["item"][0]
            bias, _ = self._bias(feature, features[feature.name])
            # b_v + Σ_g w_g·<φ_v, e_g>: the keyword score the ad head's title pooling shares
            return tf.sigmoid(logit + self.keyword_scores(keyword[:, tf.newaxis, :], groups,
                                                          bias)[:, 0])
        for dots in self._dots(keyword, groups):
            logit += tf.squeeze(self.sf_dot_weights(dots), axis=-1)
        if self.item_bias is not None:
            feature = self.task_features[SF]["item"][0]
            bias, _ = self._bias(feature, features[feature.name])
            logit += bias[:, 0]
        return tf.sigmoid(logit)

    def title_attention_weights(self, features):
        """``(e_a [B, D], α [B, L])`` of the ad titles (Eq. 11–13)."""
        users, queries = self._groups(AD, features)
        return self._attend(features, users, queries)

    def _attend(self, features, users, queries):
        batch = tf.shape(next(iter(features.values())))[0]
        user = tf.concat(users, axis=1) if users else tf.zeros([batch, 0])
        query = tf.concat(queries, axis=1) if queries else tf.zeros([batch, 0])
        embedded = [self._embed(f, features[f.name]) for f in self.task_features[AD]["item"]]
        tokens = tf.concat([e for e, _ in embedded], axis=1)
        mask = tf.concat([m for _, m in embedded], axis=1)
        return self.title_attention(tokens, mask, user, query)

    def keyword_scores(self, tokens, groups, biases):
        """The SF head's keyword score of every title token: ``r_j = b_j + Σ_g w_g·<φ_j, e_g>``
        ``[B, L]`` from token embeddings ``[B, L, D]``, pooled groups (list of ``[B, D]``) and
        per-token biases ``[B, L]`` (zeros without ``item_bias``; no dots without
        ``interactions="dot"``)."""
        if not groups or self.sf_dot_weights is None:
            return biases
        dots = tf.einsum("bld,bgd->blg", tokens, tf.stack(groups, axis=1))
        return biases + tf.squeeze(self.sf_dot_weights(dots), axis=-1)

    def _predict_ad_appeal(self, features):
        """``title_pooling="appeal"``: ad logit = context terms + β·Σ_j α_j r_j with r_j the SF
        score of title token j and α = softmax(τ·r) over the real tokens."""
        users, queries = self._groups(AD, features)
        groups = users + queries
        items = self.task_features[AD]["item"]
        embedded = [self._embed(f, features[f.name]) for f in items]
        tokens = tf.concat([e for e, _ in embedded], axis=1)
        mask = tf.concat([m for _, m in embedded], axis=1)
        biases = (tf.concat([self._bias(f, features[f.name])[0] for f in items], axis=1)
                  if self.item_bias is not None else tf.zeros_like(tf.cast(mask, tokens.dtype)))
        title, _ = self.title_attention(self.keyword_scores(tokens, groups, biases), mask)
        head = []
        for feature in self.ad_context_features:
            embedding, _ = self._embed(feature, features[feature.name])
            embedding = embedding[:, 0, :]
            head.append(embedding)
            if feature.name == "category":  # the ad's category against the query (relevance)
                head += self._dots(embedding, groups)
        if not head:
            head = [tf.zeros_like(title)[:, tf.newaxis]]
        logit = tf.squeeze(self.ad_output(tf.concat(head, axis=1)), axis=-1) + title
        return tf.sigmoid(logit)

    def predict_ad(self, features, training=False):
        """``p_ad_click`` ``[B]`` from raw ad-click features (Eq. 10–13): the shared MLP over
        ``[user, query, e_a]``; the ad head adds the id / category / position embeddings (and
        their crosses with the groups when ``interactions="dot"``)."""
        if self.config.title_pooling == "appeal":
            return self._predict_ad_appeal(features)
        users, queries = self._groups(AD, features)
        groups = users + queries
        title, alpha = self._attend(features, users, queries)
        head = [self._hidden(groups, title, training)]
        for feature in self.ad_context_features:
            embedding, _ = self._embed(feature, features[feature.name])
            embedding = embedding[:, 0, :]
            head.append(embedding)
            if feature.name == "category":  # the ad's category against the query (relevance)
                head += self._dots(embedding, groups)
        logit = self.ad_output(tf.concat(head, axis=1))
        for dots in self._dots(title, groups):
            logit += self.ad_dot_weights(dots)
        logit = tf.squeeze(logit, axis=-1)
        if self.item_bias is not None:  # Σ_j α_j b_j: the SF keywords' popularity in the title
            items = self.task_features[AD]["item"]
            if all(f.vocab == self.item_bias_vocab for f in items):
                biases = [self._bias(f, features[f.name])[0] for f in items]
                logit += tf.reduce_sum(alpha * tf.concat(biases, axis=1), axis=1)
        return tf.sigmoid(logit)

    def call(self, features, training=False):
        outputs = {}
        if self.config.multi_task and all(
                f.name in features for f in self.task_features[AD]["item"]):
            outputs[OUTPUT_NAMES[AD]] = self.predict_ad(features, training=training)
        if all(f.name in features for f in self.task_features[SF]["item"]):
            outputs[OUTPUT_NAMES[SF]] = self.predict_sf(features, training=training)
        return outputs

    # -- losses -------------------------------------------------------------------------------
    def task_loss(self, task, batch, training=True):
        """Summed BCE of one task over a batch (Eq. 14 / Eq. 15 before dividing by |S|)."""
        # [B, 1] so the loss averages nothing away: SUM reduction gives Σ over examples.
        labels = tf.cast(batch["clicked"], tf.float32)[:, tf.newaxis]
        collect = training and self.config.embedding_l2 > 0
        self._penalties = [] if collect else None
        try:
            if task == SF:
                loss = self.sf_task(labels=labels,
                                    predictions=self.predict_sf(batch, training)[:, tf.newaxis])
            else:
                loss = self.ad_task(labels=labels,
                                    predictions=self.predict_ad(batch, training)[:, tf.newaxis])
            if collect:
                # "Mini-batch aware" L2: only the rows this batch uses, so rare ids shrink
                # towards zero no faster than their data pulls them away.
                loss += self.config.embedding_l2 * tf.add_n(self._penalties)
        finally:
            self._penalties = None
        return loss

    def prior_loss(self, active=None):
        """``embedding_prior · Σ‖E‖² / N_train`` over the embedding tables the ``active`` tasks
        read and the item biases: the negative log of a Gaussian prior per row, on the mean-loss
        scale. A step on one source leaves the other source's private tables alone.

        Args:
            active: the tasks a step trains: a list (default every task), or ``{task: scalar
                bool tensor}`` when that is known only in the graph (Algorithm 1's steps).
        """
        if self.config.embedding_prior <= 0:
            return tf.constant(0.0)
        rows = float(max(self.spec.dataset(SF).row_counts.get("train", 0), 1))
        if not isinstance(active, dict):
            active = {t: True for t in (self.task_features if active is None else active)}
        readers: dict[str, set] = {}  # vocabulary -> the tasks whose features read it
        for task, sides in self.task_features.items():
            for feature in (f for feats in sides.values() for f in feats if f.vocab):
                readers.setdefault(feature.vocab, set()).add(task)
        terms = []
        for name, embedding in self.embeddings.items():
            on = [active[t] for t in sorted(readers.get(name, ())) if t in active]
            if not on or all(o is False for o in on):
                continue
            square = tf.reduce_sum(tf.square(embedding.embeddings))
            if any(o is True for o in on):
                terms.append(square)
            else:  # charged only on steps where a task reading the table has rows
                terms.append(square * tf.cast(tf.reduce_any(tf.stack(on)), square.dtype))
        if self.item_bias is not None:
            terms.append(tf.reduce_sum(tf.square(self.item_bias.embeddings)))
        return self.config.embedding_prior / rows * tf.add_n(terms)

    def active_tasks(self, inputs) -> dict:
        """``{task: scalar bool}``: the tasks of ``inputs = {task: batch}`` whose batch has rows
        (an Algorithm 1 step carries an empty batch of the source it did not draw)."""
        return {t: tf.shape(b["clicked"])[0] > 0 for t, b in inputs.items()}

    def task_losses(self, inputs, training=False) -> dict:
        """``{task: Σ BCE / B}`` over ``inputs = {task: batch}``, on the trainer's scale: each
        summed task loss over the global batch size B (the SF batch's rows, or the ad batch's
        on a step without SF rows, times the replicas in sync). Under ``proportional`` joint
        batches the ad batch holds k·B rows and is still divided by B, so every row weighs the
        same; with one replica and one task this is the task's mean loss."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        rows = {t: tf.shape(b["clicked"])[0] for t, b in inputs.items()}
        main = rows[SF] if SF in rows else rows[AD]
        if SF in rows and AD in rows:
            main = tf.where(rows[SF] > 0, rows[SF], rows[AD])
        global_batch = tf.cast(main * replicas, tf.float32)
        return {t: self.task_loss(t, b, training) / global_batch for t, b in inputs.items()}

    def compute_loss(self, inputs, training=False):
        """TFRS's loss: the task losses of ``inputs = {"sf": batch, "ad_click": batch}``
        (:meth:`task_losses`) summed, plus in training the prior over the tasks with rows,
        shared out between the replicas (their gradients are summed)."""
        return self._step_losses(inputs, training)[0]

    def _step_losses(self, inputs, training):
        """``(total, {task: loss})`` of :meth:`compute_loss`."""
        losses = self.task_losses(inputs, training)
        total = tf.add_n(list(losses.values()))
        if training:
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            total += self.prior_loss(self.active_tasks(inputs)) / float(replicas)
        return total, losses

    def train_step(self, inputs):
        """TFRS's ``train_step`` with the per-task losses reported and Algorithm 1's update.

        Variables no active task's loss reaches get no gradient (``None``) and are left alone,
        as are those of a source whose batch is empty this step: the optimizer is told which
        tasks have rows (``select_tasks``, if it has one, see
        ``tfrs_models/training/source_adam.py``), so the other head and its Adam slots stay
        as they were. ``self.task_loss_means`` (``{task: Mean}``) get each
        step's loss of the tasks with rows (``loss_<task>`` in the logs: the epoch's mean).
        """
        active = self.active_tasks(inputs)
        with tf.GradientTape() as tape:
            total, losses = self._step_losses(inputs, training=True)
        gradients = tape.gradient(total, self.trainable_variables)
        if hasattr(self.optimizer, "select_tasks"):
            self.optimizer.select_tasks(active)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, self.trainable_variables) if g is not None])
        logs = {}
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for task, loss in losses.items():
            # Metric variables are summed over replicas: R·loss with weight 1/R is one step.
            mean = self.task_loss_means[task]
            mean.update_state(tf.cast(loss, tf.float64) * replicas,
                              tf.cast(active[task], tf.float64) / replicas)
            logs[f"loss_{task}"] = mean.result()
        return logs

    # -- parameter sets of Algorithm 1 ----------------------------------------------------------
    def private_variables(self, task):
        """Variables only ``task``'s loss touches (its output layer; the title pooling for ad
        clicks). Under ``title_pooling="appeal"`` the SF dot weights are shared, not private."""
        if task == SF:
            return list(self.sf_output.trainable_variables) + (
                list(self.sf_dot_weights.trainable_variables)
                if self.sf_dot_weights and not self._shares_keyword_score else [])
        private = list(self.ad_output.trainable_variables) + list(
            self.title_attention.trainable_variables) + (
                list(self.ad_dot_weights.trainable_variables) if self.ad_dot_weights else [])
        return private + [v for name in self._private_vocabularies(AD)
                          for v in self.embeddings[name].trainable_variables]

    def _private_vocabularies(self, task):
        used = {t: {f.vocab for feats in sides.values() for f in feats if f.vocab}
                for t, sides in self.task_features.items()}
        others = set().union(*(v for t, v in used.items() if t != task))
        return sorted(used[task] - others)

    def shared_variables(self):
        """Embedding tables, cross layers and MLP used by both tasks (hard sharing)."""
        private = set(self._private_vocabularies(AD)) if self.config.multi_task else set()
        cross = [v for layer in (self.cross or []) for v in layer.trainable_variables]
        bias = list(self.item_bias.trainable_variables) if self.item_bias is not None else []
        dots = (list(self.sf_dot_weights.trainable_variables)
                if self.sf_dot_weights and self._shares_keyword_score else [])
        return [v for name, e in self.embeddings.items() if name not in private
                for v in e.trainable_variables] + cross + bias + dots + list(
                    self.shared_mlp.trainable_variables)

    @property
    def _shares_keyword_score(self) -> bool:
        """The ad head scores title tokens with the SF keyword score (its dot weights too)."""
        return self.config.multi_task and self.config.title_pooling == "appeal"

    # -- serving ------------------------------------------------------------------------------
    def input_signature(self, task=SF):
        """``{name: tf.TensorSpec}`` of the raw features ``task`` reads."""
        feats = {f.name: f for side in self.task_features[task].values() for f in side}
        return {n: tf.TensorSpec([None, None] if f.is_varlen else [None],
                                 tf.string if f.dtype == "string" or f.vocab else
                                 getattr(tf, f.dtype), name=n) for n, f in feats.items()}

    def serving_function(self, task=SF):
        """See ``prediction_function``."""
        return prediction_function(self, task)

    def dummy_features(self, task=SF, batch=1):
        """Padding-valued raw features, used to build every variable."""
        return {n: tf.zeros([batch] + [1] * (s.shape.rank - 1), s.dtype) if s.dtype != tf.string
                else tf.fill([batch] + [1] * (s.shape.rank - 1), "")
                for n, s in self.input_signature(task).items()}

    def build_all(self):
        """Create every variable (both heads) so checkpoints restore fully."""
        for task in self.task_features:
            self(self.dummy_features(task))
        return self


def base_rate_logit(spec: DataSpec, task: str) -> float:
    """``log(p / (1 - p))`` of the task's train click rate (spec.json ``label_rates``); 0 when
    the spec has no rate."""
    import math  # noqa: PLC0415

    rate = spec.label_rate(task, "train", "clicked")
    if rate is None or not 0.0 < rate < 1.0:
        return 0.0
    return math.log(rate / (1.0 - rate))


def prediction_function(model: SellingPointModel, task: str = SF):
    """A ``tf.function`` over a dict of raw feature tensors → ``{"p_sf_click": [B]}`` (or
    ``{"p_ad_click": [B]}``), with a fixed input signature, ready for
    ``tf.saved_model.save(..., signatures={"serving_default": fn})``."""
    signature = model.input_signature(task)
    name = OUTPUT_NAMES[task]
    predict = model.predict_sf if task == SF else model.predict_ad

    @tf.function(input_signature=[signature])
    def serve(features):
        return {name: predict(features, training=False)}

    return serve


def build_model(spec: DataSpec, config: ModelConfig) -> SellingPointModel:
    """A model with all variables created."""
    return SellingPointModel(spec, config).build_all()
