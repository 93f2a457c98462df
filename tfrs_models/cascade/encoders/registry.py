"""Encoder names accepted by ``--encoder`` and the config that builds them."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of the sequence encoder (002 §4, 003)."""

    name: str = "tcn"            # none | mean | target_attention | tcn | msia | self_attention | multi_time_scale
    units: int = 16
    context_length: int = 2      # TCN: filter 2·cl + 1
    personalised: bool = False   # PEG filters (tcn, msia, multi_time_scale)
    msia_filter_sizes: tuple[int, ...] = (5, 3, 3)
    msia_strides: tuple[int, ...] = (1, 2, 2)
    num_heads: int = 2
    short_window: int = 8
    long_stride: int = 4


ENCODERS = ("none", "mean", "target_attention", "tcn", "msia", "peg", "self_attention",
            "multi_time_scale")


def build_encoder(config: EncoderConfig):
    """Return the encoder layer, or None for ``none``. ``peg`` is TCN with personalised filters."""
    from tfrs_models.cascade.encoders.mean import MeanPoolingEncoder
    from tfrs_models.cascade.encoders.msia import MSIAEncoder
    from tfrs_models.cascade.encoders.multi_time_scale import MultiTimeScaleEncoder
    from tfrs_models.cascade.encoders.self_attention import SelfAttentionEncoder
    from tfrs_models.cascade.encoders.target_attention import TargetAttentionEncoder
    from tfrs_models.cascade.encoders.tcn import TCNEncoder

    c = config
    if c.name == "none":
        return None
    if c.name == "mean":
        return MeanPoolingEncoder(name="encoder")
    if c.name == "target_attention":
        return TargetAttentionEncoder(c.units, name="encoder")
    if c.name in ("tcn", "peg"):
        return TCNEncoder(c.context_length, c.units, c.personalised or c.name == "peg", name="encoder")
    if c.name == "msia":
        return MSIAEncoder(c.msia_filter_sizes, c.msia_strides, c.units, c.personalised, name="encoder")
    if c.name == "self_attention":
        return SelfAttentionEncoder(c.units, c.num_heads, name="encoder")
    if c.name == "multi_time_scale":
        return MultiTimeScaleEncoder(c.short_window, c.context_length, c.long_stride, c.units,
                                     c.personalised, name="encoder")
    raise ValueError(f"unknown encoder {c.name!r}; choose one of {', '.join(ENCODERS)}")
