"""Training loops shared by the adpush model families."""
