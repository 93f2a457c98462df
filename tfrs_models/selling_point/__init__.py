"""The selling-point model family of 001: BM, MTDL, AMTDL and their training strategies."""
