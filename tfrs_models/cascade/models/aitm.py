"""AITM (Xi et al., "Modeling the Sequential Dependence among Audience Multi-step Conversions with
Multi-task Learning in Targeted Display Advertising", KDD 2021).

MLP towers per task; the click tower's output is carried into the conversion task by a
feed-forward "information" layer and the AIT attention (the same Eq. 2–4 as 000); the loss adds
the behavioural expectation calibrator with α = 0.6 by default.
"""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.losses import AITM_DEFAULT_ALPHA
from tfrs_models.cascade.models.base import CascadeModel
from tfrs_models.cascade.towers import MLP, ProbabilityHead
from tfrs_models.cascade.transfer import InformationTransferAttention

tf = import_tensorflow()


class AITMModel(CascadeModel):
    default_calibrator_weight = AITM_DEFAULT_ALPHA

    def __init__(self, layout, config, **kwargs):
        super().__init__(layout, config, **kwargs)
        units = config.tower_units[-1]
        self.click_tower = MLP(config.tower_units, config.dropout, name="click_tower")
        self.conversion_tower = MLP(config.tower_units, config.dropout, name="conversion_tower")
        self.information = tf.keras.layers.Dense(units, activation="relu", name="information")
        self.transfer = InformationTransferAttention(units, name="ait")
        self.click_head = ProbabilityHead(self.prior("click"), name="p_click")
        self.conversion_head = ProbabilityHead(self.prior("conversion"), name="p_conversion")

    def heads(self, inputs, training=None):
        click_repr = self.click_tower(self.flat_inputs(inputs, "click"), training=training)
        conversion_repr = self.conversion_tower(self.flat_inputs(inputs, "conversion"), training=training)
        z = self.transfer(conversion_repr, self.information(click_repr))
        return {"p_click": self.click_head(click_repr), "p_conversion": self.conversion_head(z)}
