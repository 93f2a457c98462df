"""What every cascade model shares: shared embeddings, the optional sequence encoder, the two
``tfrs.tasks.Ranking`` tasks trained on every impression (entire space) and the calibrator.

Subclasses implement ``heads(inputs, training) -> {"p_click": [B, 1], "p_conversion": [B, 1], ...}``
where ``inputs`` is the SharedEmbeddings output plus ``interest`` (encoder output or None).
"""
from __future__ import annotations

import dataclasses

import tensorflow_recommenders as tfrs
from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.config import ModelConfig
from tfrs_models.cascade.data import CLICK_LABEL, CONVERSION_LABEL
from tfrs_models.cascade.encoders.registry import build_encoder
from tfrs_models.cascade.features import SharedEmbeddings
from tfrs_models.cascade.losses import behaviour_calibrator

tf = import_tensorflow()


class CascadeModel(tfrs.models.Model):
    """Base class. ``call`` returns named outputs ``p_click``, ``p_conversion`` (and ``p_cvr``
    where the model has one), each [B, 1]."""

    default_calibrator_weight = 0.0

    def __init__(self, layout: dict, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.layout = layout
        self.config = config
        self.embeddings = SharedEmbeddings(layout, config.embedding_dim,
                                           history_matches=config.history_matches,
                                           history_summary=config.history_summary,
                                           history_decay=config.history_decay,
                                           embedding_l2=config.embedding_l2,
                                           embedding_prior=config.embedding_prior,
                                           field_interactions=config.field_interactions,
                                           name="shared_embeddings")
        has_sequence = any(f["part"] == "sequence" for f in layout["features"])
        self.encoder = build_encoder(config.encoder) if has_sequence else None
        alpha = config.calibrator_weight
        self.calibrator_weight = self.default_calibrator_weight if alpha is None else float(alpha)
        # Summed over the rows: compute_loss divides by the global batch (see there).
        self.click_task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(reduction=tf.keras.losses.Reduction.SUM),
            metrics=[tf.keras.metrics.AUC(name="click_auc")])
        self.conversion_task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(reduction=tf.keras.losses.Reduction.SUM),
            metrics=[tf.keras.metrics.AUC(name="conversion_auc")])
        self.cvr_auc = tf.keras.metrics.AUC(name="cvr_auc_clicked")
        self.calibrator_metric = tf.keras.metrics.Mean(name="calibrator")
        # tfrs reports ``loss`` of the last batch only; early stopping reads this epoch mean.
        self.objective_metric = tf.keras.metrics.Mean(name="objective")
        # The step's logs are read across replicas already (``_logs``): keep the first, not a sum.
        self.distribute_reduction_method = "first"

    def prior(self, task: str) -> float | None:
        """Train positive rate of ``click`` / ``conversion`` (None if the layout lacks it);
        ``cvr`` is conversion / click, the rate of a head trained as P(conversion | click)."""
        rates = self.layout.get("label_rates") or {}
        if task == "cvr":
            click, conversion = rates.get(CLICK_LABEL), rates.get(CONVERSION_LABEL)
            return conversion / click if click and conversion is not None else None
        return rates.get(task)

    def shared_inputs(self, features, training=None):
        inputs = dict(self.embeddings(features, training=training))
        inputs["interest"] = self.encoder(inputs, training=training) if self.encoder is not None else None
        return inputs

    def flat_inputs(self, inputs, task: str | None = None):
        """Concat of the flattened field embeddings, dense features and the interest vector(s).

        ``task`` picks the click or conversion interest; None takes both when they differ.
        Returns [B, D_x].
        """
        fields = inputs["fields"]
        parts = [tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]]), inputs["dense"]]
        interest = inputs["interest"]
        if interest is not None:
            if task is not None:
                parts.append(interest[task])
            elif not self.encoder.task_specific:
                parts.append(interest["click"])
            else:
                parts += [interest["click"], interest["conversion"]]
        return tf.concat(parts, axis=-1)

    def heads(self, inputs, training=None):
        raise NotImplementedError

    def call(self, features, training=None):
        return self.heads(self.shared_inputs(features, training=training), training=training)

    def compute_loss(self, features, training=False):
        """This replica's share of the batch's mean loss, Eq. (7) of 000.

        Each term is summed over this replica's rows and divided by the rows of the *global*
        batch (every replica's), ``tf.nn.compute_average_loss``'s scaling: the optimizer sums the
        replicas' gradients, so a step follows the mean over the global batch. With one replica
        it is the mean itself, the last partial batch included.
        """
        outputs = self(features, training=training)
        click = tf.cast(tf.reshape(features[CLICK_LABEL], [-1, 1]), tf.float32)
        conversion = tf.cast(tf.reshape(features[CONVERSION_LABEL], [-1, 1]), tf.float32)
        rows = tf.cast(tf.shape(click)[0], tf.float32)
        global_rows = _global_rows(rows)
        # Entire space: both heads see every impression; conversion's label is click-and-convert.
        click_sum = self.click_task(labels=click, predictions=outputs["p_click"])
        conversion_sum = self.conversion_task(labels=conversion, predictions=outputs["p_conversion"])
        calibrator = behaviour_calibrator(outputs["p_click"], outputs["p_conversion"], reduce="sum")

        def mean_over(count):
            loss = tf.math.divide_no_nan(click_sum, count) + tf.math.divide_no_nan(conversion_sum, count)
            if self.calibrator_weight:
                loss += self.calibrator_weight * tf.math.divide_no_nan(calibrator, count)
            return loss

        # On an empty replica batch (a last batch split over replicas) the means are 0, unweighted.
        self.calibrator_metric.update_state(tf.math.divide_no_nan(calibrator, rows),
                                            sample_weight=tf.minimum(rows, 1.0))
        # CVR AUC on clicked impressions only: weight 0 for the non-clicked.
        self.cvr_auc.update_state(conversion, outputs.get("p_cvr", outputs["p_conversion"]),
                                  sample_weight=click)
        self.objective_metric.update_state(mean_over(rows), sample_weight=rows)
        return mean_over(global_rows)

    def train_step(self, inputs):
        """tfrs ``Model.train_step`` made replica-aware: the regularisation is split over the
        replicas (their gradients are summed) and the logs are the same on every replica."""
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = self._regularization_loss()
            total_loss = loss + regularization_loss
        gradients = tape.gradient(total_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._logs(loss, regularization_loss)

    def test_step(self, inputs):
        loss = self.compute_loss(inputs, training=False)
        return self._logs(loss, self._regularization_loss())

    def _regularization_loss(self):
        total = tf.reduce_sum([tf.reduce_sum(loss) for loss in self.losses])
        return tf.nn.scale_regularization_loss(total)

    def _logs(self, loss, regularization_loss):
        """Metrics read across replicas, and the replicas' loss shares summed (the global mean)."""
        context = tf.distribute.get_replica_context()
        if context.num_replicas_in_sync > 1:
            loss, regularization_loss = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                                           [loss, regularization_loss])
        logs = context.merge_call(lambda _: {metric.name: metric.result() for metric in self.metrics})
        return {**logs, "loss": loss, "regularization_loss": regularization_loss,
                "total_loss": loss + regularization_loss}

    def serving_function(self):
        """tf.function over the raw serving inputs (export.input_signature) → outputs [B]."""
        from tfrs_models.cascade.export import input_signature

        @tf.function(input_signature=[input_signature(self.layout)])
        def serve(features):
            outputs = self(features, training=False)
            return {name: tf.reshape(value, [-1]) for name, value in outputs.items()}

        return serve

    def get_config(self):
        return {"layout": self.layout, "config": dataclasses.asdict(self.config)}


def _global_rows(rows):
    """The rows of the global batch: ``rows`` summed over the replicas in sync."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return rows
    return context.all_reduce(tf.distribute.ReduceOp.SUM, rows)
