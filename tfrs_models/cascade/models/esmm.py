"""ESMM (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018).

Two towers over the shared embeddings give pCTR and pCVR; the conversion head is their product
``p_ctcvr = p_ctr · p_cvr`` and is trained on click-and-convert over every impression, so pCVR
is learned over the entire space without being supervised on clicked samples alone.
"""
from __future__ import annotations

from tfrs_models.cascade.models.base import CascadeModel
from tfrs_models.cascade.towers import MLP, ProbabilityHead


class ESMMModel(CascadeModel):
    """Outputs ``p_click`` (pCTR), ``p_cvr`` and ``p_conversion`` = pCTR · pCVR, each [B, 1]."""

    def __init__(self, layout, config, **kwargs):
        super().__init__(layout, config, **kwargs)
        self.ctr_tower = MLP(config.tower_units, config.dropout, name="ctr_tower")
        self.cvr_tower = MLP(config.tower_units, config.dropout, name="cvr_tower")
        self.ctr_head = ProbabilityHead(self.prior("click"), name="p_click")
        self.cvr_head = ProbabilityHead(self.prior("cvr"), name="p_cvr")

    def heads(self, inputs, training=None):
        p_ctr = self.ctr_head(self.ctr_tower(self.flat_inputs(inputs, "click"), training=training))
        p_cvr = self.cvr_head(self.cvr_tower(self.flat_inputs(inputs, "conversion"), training=training))
        return {"p_click": p_ctr, "p_cvr": p_cvr, "p_conversion": p_ctr * p_cvr}
