"""MMoE (Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts", KDD 2018): shared experts, one softmax gate per task,
``f_k(x) = Σ_i g_k(x)_i · expert_i(x)``, then a tower per task."""
from __future__ import annotations

from adpush_core.tfenv import import_tensorflow
from tfrs_models.cascade.models.base import CascadeModel
from tfrs_models.cascade.towers import MLP, ProbabilityHead

tf = import_tensorflow()


class MMoEModel(CascadeModel):
    def __init__(self, layout, config, **kwargs):
        super().__init__(layout, config, **kwargs)
        self.experts = [MLP(config.expert_units, config.dropout, name=f"expert_{i}")
                        for i in range(config.num_experts)]
        self.gates = {task: tf.keras.layers.Dense(config.num_experts, activation="softmax",
                                                  name=f"{task}_gate")
                      for task in ("click", "conversion")}
        self.towers = {task: MLP(config.tower_units[1:], config.dropout, name=f"{task}_tower")
                       for task in ("click", "conversion")}
        self.probability_heads = {task: ProbabilityHead(self.prior(task), name=f"p_{task}") for task in ("click", "conversion")}

    def heads(self, inputs, training=None):
        x = self.flat_inputs(inputs)
        experts = tf.stack([e(x, training=training) for e in self.experts], axis=1)   # [B, E, H]
        out = {}
        for task in ("click", "conversion"):
            gate = self.gates[task](x)[..., tf.newaxis]                                  # [B, E, 1]
            mixed = tf.reduce_sum(gate * experts, axis=1)                                # [B, H]
            out[f"p_{task}"] = self.probability_heads[task](self.towers[task](mixed, training=training))
        return out
