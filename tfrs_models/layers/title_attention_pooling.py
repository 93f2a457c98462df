"""Title attention pooling personalised by user and query — Eq. (11)–(13) of 001."""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow

tf = import_tensorflow()


class TitleAttentionPooling(tf.keras.layers.Layer):
    """Attention over title tokens, personalised by the user and the query.

    ``b_j = zᵀ tanh(W_u e_u + W_q e_q + W_a Em(d_j))`` (Eq. 11), ``α = softmax(b)`` over the real
    (unmasked) tokens only (Eq. 12), ``e_a = Σ_j α_j Em(d_j)`` (Eq. 13) of 001. A title with no
    real token pools to zeros with all weights zero.

    Args:
        units: width of the first attention layer (rows of ``W_u``, ``W_q``, ``W_a``).

    Call args:
        token_embeddings: ``[B, L, D]`` — ``Em(d_j)``.
        token_mask: ``[B, L]`` bool, True for real tokens.
        user: ``[B, Du]`` — ``e_u``.
        query: ``[B, Dq]`` — ``e_q``.

    Returns:
        ``(e_a [B, D], alpha [B, L])``.
    """

    def __init__(self, units: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.user_projection = tf.keras.layers.Dense(self.units, use_bias=False, name="W_u")
        self.query_projection = tf.keras.layers.Dense(self.units, use_bias=False, name="W_q")
        self.token_projection = tf.keras.layers.Dense(self.units, use_bias=False, name="W_a")
        self.score = tf.keras.layers.Dense(1, use_bias=False, name="z")

    def call(self, token_embeddings, token_mask, user, query):
        personal = self.user_projection(user) + self.query_projection(query)  # [B, U]
        hidden = tf.tanh(self.token_projection(token_embeddings) + personal[:, tf.newaxis, :])
        scores = tf.squeeze(self.score(hidden), axis=-1)  # [B, L], Eq. (11)
        mask = tf.cast(token_mask, scores.dtype)
        # Padding gets -inf-like scores; the re-normalisation keeps all-padding titles at zero.
        scores = tf.where(token_mask, scores, tf.fill(tf.shape(scores), -1e9))
        alpha = tf.nn.softmax(scores, axis=-1) * mask  # Eq. (12)
        alpha = alpha / tf.maximum(tf.reduce_sum(alpha, axis=-1, keepdims=True), 1e-12)
        pooled = tf.reduce_sum(alpha[..., tf.newaxis] * token_embeddings, axis=1)  # Eq. (13)
        return pooled, alpha

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config
