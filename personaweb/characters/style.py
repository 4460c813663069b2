"""Style adherence: does a reply sound like the character it is meant to be?

Everything here is local, deterministic and pure Python, so the metric can run in tests, in
benchmarks and on every reply without a network or a model. Two measures:

1. **Attribution probability** (`StyleScore.probability`): P(intended character | reply)
   among the known cast, from an authorship classifier trained on every character's sample
   lines. It multiplies two experts (adds their log-scores) and takes a softmax:

   - *n-grams*: multinomial naive Bayes over character 1- to 4-grams of the lowercased,
     whitespace-normalised text plus word unigrams. Counts are smoothed towards a background
     distribution (Dirichlet smoothing, `PRIOR_WEIGHT` pseudo-counts; the background averages
     the characters so a wordy one does not define "normal"). Plain add-one smoothing was
     tried first and lost badly on ~30 short lines per character. The log-likelihood is
     divided by the reply's number of features, so length does not make a reply "surer".
   - *stylometry*: the reply's stylometric vector (below) under a diagonal Gaussian centred
     on the character's profile, with per-feature variance pooled over all characters.
     This is what sees case, punctuation and sentence length, which the n-grams lowercase
     or normalise away.

   Equal weights for the two (`EVIDENCE`, `STYLE_WEIGHT`) were chosen on held-out lines.
   1/N means "could be anyone", near 1 means "unmistakably them". The number is relative
   to the cast: add characters and it changes.

2. **Stylometric distance** (`StyleScore.distance`): cosine distance between the reply's
   standardised feature vector and the character's profile. Features: rates of ~90 function
   words (archaic ones like "thou" and "hath" included), mean word length, mean sentence
   length, the rate of each punctuation mark, the share of capital letters and of sentences
   starting with one, and the rates of profanity and digits. Each is z-scored over all
   training lines; a profile is the mean of its character's lines. 0 = same shape of
   writing, 1 = unrelated, up to 2 = opposite. It ignores vocabulary entirely.

`heldout_accuracy` checks the classifier: k-fold over every character's sample lines (line i is
held out in fold i mod k), training on the rest and predicting each held-out line.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from personaweb.characters.sheet import CharacterSheet

NGRAM_ORDERS = (1, 2, 3, 4)
PRIOR_WEIGHT = 3000.0
"""Dirichlet smoothing: how many pseudo-occurrences of the background each character gets."""
BACKGROUND_FLOOR = 0.01
"""Share of uniform probability mixed into the background, so no known feature has p = 0."""
# The two weights below were chosen on held-out lines of the bundled cast: equal weights gave
# the best accuracy, and their size makes the mean top probability match the accuracy
# (about 0.85), so probabilities are neither timid nor overconfident.
EVIDENCE = 13.0
"""Weight of the n-gram evidence (per feature occurrence, so reply length does not matter)."""
STYLE_WEIGHT = 13.0
"""Weight of the stylometric evidence in the classifier."""
SPREAD_FLOOR = 0.05
"""Smallest per-feature variance (in z units) the stylometric Gaussian may use."""

_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_RAW_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s+|$)")


def _word_list(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FUNCTION_WORDS = _word_list(
    """
    the a an and but or nor so yet if then than as of to in on at by for with from into upon
    about i me my mine you your we us our he him his she her it its they them their this that
    these those what who which not no is are was were be been am do does did have has had will
    would shall should can could must may might just like very really oh o
    thou thee thy thine hath doth art ye
    """
)
PUNCTUATION = (",", ".", "!", "?", ";", ":", "'", '"', "-", "(", "…")
PROFANITY = frozenset(
    _word_list(
        """
    fuck fucking fuckin fucked shit shitty damn damned goddamn hell ass asshole bitch bastard
    crap piss dick wtf tf
    """
    )
)


@dataclass(frozen=True)
class StyleScore:
    """How well one reply fits one character."""

    probability: float
    """P(intended character | reply) among the trained cast, 0..1."""
    predicted_slug: str
    """The character the classifier thinks wrote the reply."""
    distance: float
    """Stylometric cosine distance to the intended character's profile, 0..2 (lower = closer)."""
    ranking: tuple[tuple[str, float], ...]
    """Every character with its probability, most likely first."""


@dataclass(frozen=True)
class StyleModel:
    """A trained classifier plus stylometric profiles. Build it with `train` or `from_lines`."""

    slugs: tuple[str, ...]
    """The characters the model knows, sorted."""
    counts: Mapping[str, Mapping[str, int]]
    """Per character: how often each n-gram / word feature occurs in its lines."""
    totals: Mapping[str, int]
    """Per character: the sum of its feature counts."""
    background: Mapping[str, float]
    """Per feature: its probability averaged over characters (each character weighs the same)."""
    feature_mean: tuple[float, ...]
    """Per stylometric feature: mean over all training lines (for z-scores)."""
    feature_scale: tuple[float, ...]
    """Per stylometric feature: standard deviation over all training lines (1 if constant)."""
    profiles: Mapping[str, tuple[float, ...]]
    """Per character: mean standardised stylometric vector of its lines."""
    spread: tuple[float, ...]
    """Per stylometric feature: variance around each character's profile, pooled."""

    @classmethod
    def train(cls, sheets: Iterable[CharacterSheet]) -> StyleModel:
        """Train on every sheet's sample lines; sheets without sample lines are skipped."""
        return cls.from_lines({s.slug: s.sample_lines for s in sheets if s.sample_lines})

    @classmethod
    def from_lines(cls, lines_by_slug: Mapping[str, Sequence[str]]) -> StyleModel:
        """Train on explicit lines per character slug."""
        corpus = {slug: list(lines) for slug, lines in lines_by_slug.items() if lines}
        if not corpus:
            raise ValueError("style model: no character has sample lines to learn from")
        slugs = tuple(sorted(corpus))

        counts = {slug: Counter[str]() for slug in slugs}
        for slug in slugs:
            for line in corpus[slug]:
                counts[slug].update(text_features(line))
        totals = {slug: max(sum(counts[slug].values()), 1) for slug in slugs}
        # The background is averaged per character, not pooled: pooling would let the wordiest
        # character define "normal" and pull every small character's estimates towards it.
        averaged: dict[str, float] = {}
        for slug in slugs:
            for feature, n in counts[slug].items():
                averaged[feature] = averaged.get(feature, 0.0) + n / totals[slug] / len(slugs)
        floor = BACKGROUND_FLOOR / max(len(averaged), 1)
        background = {
            f: (p + floor) / (1.0 + BACKGROUND_FLOOR) for f, p in sorted(averaged.items())
        }

        vectors = {slug: [stylometric_vector(line) for line in corpus[slug]] for slug in slugs}
        every = [v for slug in slugs for v in vectors[slug]]
        mean = _mean_vector(every)
        scale = tuple(
            math.sqrt(sum((x - m) ** 2 for x in column) / len(every)) or 1.0
            for column, m in zip(zip(*every, strict=True), mean, strict=True)
        )
        standard = {slug: [_standardise(v, mean, scale) for v in vectors[slug]] for slug in slugs}
        profiles = {slug: _mean_vector(standard[slug]) for slug in slugs}
        deviations = [
            tuple((x - m) ** 2 for x, m in zip(z, profiles[slug], strict=True))
            for slug in slugs
            for z in standard[slug]
        ]
        # A variance floor keeps a feature that one character never varies (say, capitals for
        # a lowercase texter) from turning a single stray capital into certain rejection.
        spread = tuple(max(v, SPREAD_FLOOR) for v in _mean_vector(deviations))
        frozen_counts = {slug: dict(counts[slug]) for slug in slugs}
        return cls(slugs, frozen_counts, totals, background, mean, scale, profiles, spread)

    def probabilities(self, text: str) -> dict[str, float]:
        """P(character | text) for every known character (sums to 1)."""
        if not normalise(text):
            return {slug: 1.0 / len(self.slugs) for slug in self.slugs}
        ngram = self._ngram_scores(text)
        vector = _standardise(stylometric_vector(text), self.feature_mean, self.feature_scale)
        scores = {
            slug: EVIDENCE * ngram[slug] + STYLE_WEIGHT * self._stylometric_score(vector, slug)
            for slug in self.slugs
        }
        return _softmax(scores)

    def _ngram_scores(self, text: str) -> dict[str, float]:
        """Naive Bayes log-likelihood per character, per feature occurrence."""
        features = {f: n for f, n in text_features(text).items() if f in self.background}
        total = sum(features.values())
        if total == 0:
            return dict.fromkeys(self.slugs, 0.0)
        scores = {}
        for slug in self.slugs:
            counts, denominator = self.counts[slug], self.totals[slug] + PRIOR_WEIGHT
            log_likelihood = sum(
                n * math.log((counts.get(f, 0) + PRIOR_WEIGHT * self.background[f]) / denominator)
                for f, n in features.items()
            )
            scores[slug] = log_likelihood / total
        return scores

    def _stylometric_score(self, vector: Sequence[float], slug: str) -> float:
        """Diagonal-Gaussian log-likelihood of the standardised vector, per feature."""
        profile = self.profiles[slug]
        squares = sum(
            (x - m) ** 2 / v for x, m, v in zip(vector, profile, self.spread, strict=True)
        )
        return -squares / (2 * len(vector))

    def predict(self, text: str) -> str:
        """The most likely author among the known characters."""
        return self._ranking(self.probabilities(text))[0][0]

    def distance(self, text: str, slug: str) -> float:
        """Stylometric cosine distance between the text and the character's profile."""
        self._require(slug)
        vector = _standardise(stylometric_vector(text), self.feature_mean, self.feature_scale)
        return _cosine_distance(vector, self.profiles[slug])

    def score(self, text: str, slug: str) -> StyleScore:
        """How well `text` fits the character `slug`."""
        self._require(slug)
        ranking = self._ranking(self.probabilities(text))
        return StyleScore(
            probability=dict(ranking)[slug],
            predicted_slug=ranking[0][0],
            distance=self.distance(text, slug),
            ranking=ranking,
        )

    def consistency(self, texts: Sequence[str], slug: str) -> float:
        """How steadily a run of replies stays in one voice, 0..1.

        The mean of two numbers: the average P(slug | reply) and the fraction of replies the
        classifier attributes to `slug`. The first rewards confidence, the second rewards never
        slipping into someone else's voice.
        """
        self._require(slug)
        if not texts:
            raise ValueError("consistency: no replies to judge")
        scores = [self.score(text, slug) for text in texts]
        mean_probability = sum(s.probability for s in scores) / len(scores)
        hit_rate = sum(s.predicted_slug == slug for s in scores) / len(scores)
        return (mean_probability + hit_rate) / 2

    def _require(self, slug: str) -> None:
        if slug not in self.profiles:
            raise KeyError(f"style model: unknown character {slug!r}")

    @staticmethod
    def _ranking(probabilities: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
        # Ties break on the slug so that the ranking never depends on dict order.
        return tuple(sorted(probabilities.items(), key=lambda item: (-item[1], item[0])))


def heldout_accuracy(sheets: Iterable[CharacterSheet], folds: int = 5) -> float:
    """k-fold accuracy of the classifier on the characters' own sample lines.

    Line i of each character is held out in fold i mod k: deterministic, and every character
    contributes to every fold.
    """
    if folds < 2:
        raise ValueError("heldout_accuracy: need at least 2 folds")
    corpus = {s.slug: list(s.sample_lines) for s in sheets if s.sample_lines}
    correct = total = 0
    for fold in range(folds):
        train = {
            slug: [line for i, line in enumerate(lines) if i % folds != fold]
            for slug, lines in corpus.items()
        }
        model = StyleModel.from_lines(train)
        for slug, lines in corpus.items():
            for line in lines[fold::folds]:
                correct += model.predict(line) == slug
                total += 1
    if total == 0:
        raise ValueError("heldout_accuracy: no sample lines")
    return correct / total


# --- features -------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lowercase and collapse runs of whitespace to one space."""
    return _WHITESPACE.sub(" ", text.lower()).strip()


def text_features(text: str) -> Counter[str]:
    """Classifier features: char 1-4 grams (prefixed 'c') and word unigrams (prefixed 'w')."""
    normal = normalise(text)
    features: Counter[str] = Counter()
    if not normal:
        return features
    # Spaces around the text let n-grams see the first and last word as word edges.
    padded = f" {normal} "
    for n in NGRAM_ORDERS:
        features.update("c" + padded[i : i + n] for i in range(len(padded) - n + 1))
    features.update("w" + word for word in _WORD.findall(normal))
    return features


def stylometric_vector(text: str) -> tuple[float, ...]:
    """Case- and punctuation-aware style features of one text (see the module docstring)."""
    raw_words = _RAW_WORD.findall(text)
    words = [w.lower() for w in raw_words]
    n_words = max(len(words), 1)
    n_chars = max(len(text), 1)
    word_counts = Counter(words)
    letters = [c for c in text if c.isalpha()]
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    capitalised = sum(s.lstrip()[:1].isupper() for s in sentences)

    vector = [word_counts[w] / n_words for w in FUNCTION_WORDS]
    vector.append(sum(len(w) for w in words) / n_words)
    vector.append(len(words) / max(len(sentences), 1))
    vector.extend(text.count(p) / n_chars * 100 for p in PUNCTUATION)
    vector.append(sum(c.isupper() for c in letters) / max(len(letters), 1))
    vector.append(capitalised / max(len(sentences), 1))
    vector.append(sum(word_counts[w] for w in PROFANITY) / n_words)
    vector.append(sum(c.isdigit() for c in text) / n_chars)
    return tuple(vector)


# --- small vector helpers -----------------------------------------------------------------


def _standardise(
    vector: Sequence[float], mean: Sequence[float], scale: Sequence[float]
) -> tuple[float, ...]:
    return tuple((x - m) / s for x, m, s in zip(vector, mean, scale, strict=True))


def _mean_vector(vectors: Sequence[Sequence[float]]) -> tuple[float, ...]:
    return tuple(sum(column) / len(vectors) for column in zip(*vectors, strict=True))


def _cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    if norm == 0.0:
        return 1.0  # no direction to compare: call it unrelated
    cosine = sum(x * y for x, y in zip(a, b, strict=True)) / norm
    return 1.0 - max(-1.0, min(1.0, cosine))


def _softmax(scores: Mapping[str, float]) -> dict[str, float]:
    top = max(scores.values())
    exps = {slug: math.exp(value - top) for slug, value in scores.items()}
    total = sum(exps.values())
    return {slug: value / total for slug, value in exps.items()}
