"""adpush: personalised selling-point keywords for sponsored-search ad titles."""
from adpush_core import tfenv as _tfenv  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TF import)

__version__ = "0.1.0"
