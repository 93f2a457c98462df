"""Shared-bottom multitask baseline (Caruana, "Multitask Learning", Machine Learning 1997):
one MLP over the shared inputs, one tower per task."""
from __future__ import annotations

from tfrs_models.cascade.models.base import CascadeModel
from tfrs_models.cascade.towers import MLP, ProbabilityHead


class SharedBottomModel(CascadeModel):
    def __init__(self, layout, config, **kwargs):
        super().__init__(layout, config, **kwargs)
        self.bottom = MLP(config.tower_units[:1], config.dropout, name="bottom")
        self.click_tower = MLP(config.tower_units[1:], config.dropout, name="click_tower")
        self.conversion_tower = MLP(config.tower_units[1:], config.dropout, name="conversion_tower")
        self.click_head = ProbabilityHead(self.prior("click"), name="p_click")
        self.conversion_head = ProbabilityHead(self.prior("conversion"), name="p_conversion")

    def heads(self, inputs, training=None):
        shared = self.bottom(self.flat_inputs(inputs), training=training)   # [B, units[0]]
        return {"p_click": self.click_head(self.click_tower(shared, training=training)),
                "p_conversion": self.conversion_head(self.conversion_tower(shared, training=training))}
