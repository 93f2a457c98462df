"""Line parsers of each raw source: pure functions ``(text, *side) -> (key, row)``."""
