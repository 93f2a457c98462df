"""What the cascade family reads of ``OUT/spec.json`` (tfrs_models.input): the dataset
(``sequence``, tf.train.SequenceExample, else ``cascade_flat``, tf.train.Example; docs/contracts.md
§2 and §5) and its two labels."""
from __future__ import annotations

from adpush_core.errors import UserError
from tfrs_models.input import DatasetSpec, load_spec

CLICK_LABEL = "click"
CONVERSION_LABEL = "conversion"
DATASETS = ("sequence", "cascade_flat")  # in order of preference


def load_dataset(data_dir, name: str | None = None) -> DatasetSpec:
    """The cascade dataset of ``data_dir/spec.json``: ``name``, or the first of ``DATASETS`` it
    has; UserError when there is none or it lacks the click/conversion labels."""
    spec = load_spec(data_dir)
    if name is None:
        name = next((d for d in DATASETS if d in spec.datasets), None)
        if name is None:
            raise UserError(f"{data_dir}/spec.json has no cascade dataset ({' or '.join(DATASETS)}; "
                            f"it has {sorted(spec.datasets)})")
    return spec.dataset(name, labels=(CLICK_LABEL, CONVERSION_LABEL))
