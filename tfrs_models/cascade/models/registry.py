"""``--model`` names → classes."""
from __future__ import annotations

from tfrs_models.cascade.config import MODELS, ModelConfig


def build_model(layout: dict, config: ModelConfig):
    from tfrs_models.cascade.models.aitm import AITMModel
    from tfrs_models.cascade.models.cnn_attention import CNNAttentionModel
    from tfrs_models.cascade.models.esmm import ESMMModel
    from tfrs_models.cascade.models.mmoe import MMoEModel
    from tfrs_models.cascade.models.shared_bottom import SharedBottomModel

    classes = {"cnn_attention": CNNAttentionModel, "shared_bottom": SharedBottomModel,
               "esmm": ESMMModel, "mmoe": MMoEModel, "aitm": AITMModel}
    if config.name not in classes:
        raise ValueError(f"unknown model {config.name!r}; choose one of {', '.join(MODELS)}")
    return classes[config.name](layout, config, name=config.name)
