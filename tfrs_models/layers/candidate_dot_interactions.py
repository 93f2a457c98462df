"""Dot-product (FM-style) crosses of a candidate vector with pooled feature groups."""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow

tf = import_tensorflow()


class CandidateDotInteractions(tf.keras.layers.Layer):
    """``s_g = <e_v, e_g>`` for each pooled group ``g``: the candidate keyword (or pooled ad title)
    crossed with the user, history, profile and query groups, as a factorisation machine's
    pairwise term (Rendle 2010; DeepFM's FM part). The world's SF click logit is exactly such a
    sum (``θ_u·φ_v`` with ``θ_u`` additive over profile fields, + query facet × keyword), which an
    MLP over the concatenated vectors learns only slowly (issue 13: after ~6k steps).

    Call args:
        candidate: ``[B, D]``.
        groups: ``[B, G·D]`` — G pooled group vectors side by side (as the model concatenates
          them), or a list of ``[B, D]``.

    Returns:
        ``[B, G]``: one dot product per group.
    """

    def call(self, candidate, groups):
        if isinstance(groups, (list, tuple)):
            groups = tf.stack(list(groups), axis=1)                    # [B, G, D]
        else:
            dim = candidate.shape[-1]
            groups = tf.reshape(groups, [-1, groups.shape[-1] // dim, dim])
        return tf.einsum("bd,bgd->bg", candidate, groups)

    def get_config(self):
        return super().get_config()
