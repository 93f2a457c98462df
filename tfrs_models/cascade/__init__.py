"""CTR→CVR cascade family: the 1D-CNN + attention-transfer model of 000, its ESMM/MMoE/AITM and
shared-bottom baselines, and the CAIN (002) / multi-time-scale (003) sequence encoders.

The papers (000–003) are named in docs/papers.md."""
