"""Token counts summed over a bundle and emitted once per (day, vocab) at its end, so that
vocabulary building costs a few elements per bundle instead of one per user or token."""
from __future__ import annotations

from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindows

TOKENS_TAG = "tokens"


class BundleTokenCounts:
    def __init__(self):
        self.counts: dict = {}

    def add(self, by_day: dict):
        """``by_day``: {day: {vocab: {token: n}}}."""
        for day, vocabs in by_day.items():
            for vocab, tokens in vocabs.items():
                acc = self.counts.setdefault((day, vocab), {})
                for token, n in tokens.items():
                    acc[token] = acc.get(token, 0) + n

    def flush(self):
        """Yield ``TaggedOutput(tokens, (day, (vocab, {token: n})))`` windowed values."""
        counts, self.counts = self.counts, {}
        for (day, vocab), tokens in sorted(counts.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
            yield pvalue.TaggedOutput(TOKENS_TAG, GlobalWindows.windowed_value((day, (vocab, tokens))))


class TrainTokenCounts:
    """Token counts of the train split only, summed over a bundle (for DoFns that know each
    day's split themselves: the *Shards writers); emitted once per vocab at its end."""

    def __init__(self):
        self.counts: dict = {}

    def add(self, by_day: dict, split_of_day):
        """``by_day``: {day: {vocab: {token: n}}}; ``split_of_day(day) -> split name``."""
        for day, vocabs in by_day.items():
            if split_of_day(day) == "train":
                self.add_counts(vocabs)

    def add_counts(self, vocabs: dict):
        """``vocabs``: {vocab: {token: n}} of the train split."""
        for vocab, tokens in vocabs.items():
            acc = self.counts.setdefault(vocab, {})
            for token, n in tokens.items():
                acc[token] = acc.get(token, 0) + n

    def flush(self):
        """Yield ``TaggedOutput(tokens, (vocab, {token: n}))`` windowed values."""
        counts, self.counts = self.counts, {}
        for vocab in sorted(counts):
            yield pvalue.TaggedOutput(TOKENS_TAG, GlobalWindows.windowed_value((vocab, counts[vocab])))
