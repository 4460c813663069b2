"""The local style metric: agreement with people on hand-written voice pairs, held-out
attribution on the bundled cast, register markers, determinism, robustness to odd text."""

from __future__ import annotations

import pytest

from personaweb.characters.plain_voice import PLAIN_LINES, PLAIN_SLUG
from personaweb.characters.sheet import CharacterSheet
from personaweb.characters.style import (
    MARKER_CLASSES,
    StyleModel,
    VoicePair,
    clean,
    heldout_accuracy,
    marker_counts,
    pairwise_agreement,
)
from tests.characters.conftest import load_pairs

JON_REPLY = (
    "Who gives a shit about AI, pal? If it can't make me money it's a waste of my "
    "goddamn time. Now get the fuck out of my office."
)

# --- agreement with people ---------------------------------------------------------------------


def test_it_agrees_with_people_on_the_reporting_pairs(style_model: StyleModel) -> None:
    # The reporting set was written after the metric was frozen (see style.py's docstring):
    # these are the figures the issue asks for, on nothing the metric was tuned on.
    agreement = pairwise_agreement(style_model, load_pairs("report"))
    print("\npairwise agreement, reporting set:\n" + agreement.report())
    assert agreement.overall >= 0.95
    for slug in agreement.per_character:
        assert agreement.rate(slug) >= 0.90, slug


def test_it_keeps_agreeing_on_the_pairs_it_was_tuned_on(style_model: StyleModel) -> None:
    # Not evidence of agreement (it was tuned here), but a regression guard: a change to the
    # metric that loses the tuning pairs has lost something a person hears.
    agreement = pairwise_agreement(style_model, load_pairs("tune") + load_pairs("dev"))
    print("\npairwise agreement, tuning + development sets:\n" + agreement.report())
    assert agreement.overall >= 0.95


def test_the_validation_set_is_kept_apart_from_what_the_metric_learns(
    bundled: list[CharacterSheet],
) -> None:
    report = load_pairs("report")
    slugs = {sheet.slug for sheet in bundled}
    per_character = {slug: [p for p in report if p.slug == slug] for slug in slugs}
    # At least 20 pairs for every bundled character, with both kinds of contrast.
    assert all(len(pairs) >= 20 for pairs in per_character.values()), per_character.keys()
    for pairs in per_character.values():
        kinds = {p.other_voice for p in pairs}
        assert "plain" in kinds and kinds - {"plain"} <= slugs
        assert len(kinds) > 1
    # No line is one the metric trains on, nor one of the pairs it was tuned on.
    learned = {clean(line).lower() for sheet in bundled for line in sheet.sample_lines}
    learned |= {clean(line).lower() for line in PLAIN_LINES}
    tuned = {clean(t).lower() for p in load_pairs("tune") + load_pairs("dev") for t in p.texts}
    for pair in report:
        for text in pair.texts:
            assert clean(text).lower() not in learned | tuned, text


def test_a_tie_counts_against_the_metric(style_model: StyleModel) -> None:
    same = VoicePair("mack_dorsey", "Rain again.", "Rain again.")
    agreement = pairwise_agreement(style_model, [same])
    assert agreement.per_character == {"mack_dorsey": (0, 1)}
    assert agreement.misses == (same,)


# --- attribution -------------------------------------------------------------------------------


def test_heldout_attribution_on_the_bundled_cast_stays_at_least_80_percent(
    bundled: list[CharacterSheet],
) -> None:
    with_plain = heldout_accuracy(bundled, folds=5)
    cast_only = heldout_accuracy(bundled, folds=5, plain=False)
    print(
        f"held-out accuracy over {len(bundled)} characters, 5 folds: {with_plain:.3f} with "
        f"the plain speaker competing, {cast_only:.3f} among the cast alone"
    )
    assert with_plain >= 0.80
    assert cast_only >= 0.80


def test_scores_are_deterministic(bundled: list[CharacterSheet]) -> None:
    first = StyleModel.train(bundled).score(JON_REPLY, "jon_johns")
    second = StyleModel.train(list(reversed(bundled))).score(JON_REPLY, "jon_johns")
    assert first == second
    assert heldout_accuracy(bundled) == heldout_accuracy(bundled)


def test_a_reply_in_jons_voice_scores_higher_for_jon_than_for_sara(
    style_model: StyleModel,
) -> None:
    for_jon = style_model.score(JON_REPLY, "jon_johns")
    for_sara = style_model.score(JON_REPLY, "sara_wilcox")
    assert for_jon.probability > for_sara.probability
    assert for_jon.predicted_slug == "jon_johns"
    assert for_jon.distance < for_sara.distance


def test_an_archaic_reply_is_attributed_to_sara(style_model: StyleModel) -> None:
    reply = "Art thou so weak? Screw thy courage up, my lord, and leave the rest to me."
    score = style_model.score(reply, "sara_wilcox")
    assert score.predicted_slug == "sara_wilcox"
    assert score.probability > 1 / len(style_model.slugs)


def test_a_reply_with_no_voice_is_nobodys(style_model: StyleModel) -> None:
    # Without the plain speaker this went to whichever character sounds most modern.
    reply = "I think that's a reasonable plan, and I'm happy to help if you need anything."
    score = style_model.score(reply, "jon_johns")
    assert score.predicted_slug == PLAIN_SLUG
    assert all(p < 0.05 for slug, p in score.ranking if slug != PLAIN_SLUG)


def test_the_ranking_is_a_probability_distribution(style_model: StyleModel) -> None:
    score = style_model.score("hello there", "kai_tanaka")
    probabilities = [p for _, p in score.ranking]
    assert sorted(probabilities, reverse=True) == probabilities
    assert abs(sum(probabilities) - 1.0) < 1e-9
    assert {slug for slug, _ in score.ranking} == set(style_model.slugs)
    assert 0.0 <= score.distance <= 2.0


def test_an_empty_reply_could_be_anyone(style_model: StyleModel) -> None:
    score = style_model.score("   ", "mack_dorsey")
    assert score.probability == pytest.approx(1 / len(style_model.slugs))


def test_consistency_rewards_staying_in_one_voice(style_model: StyleModel) -> None:
    in_voice = ["lol ur so bad at this", "nah fr thats mid", "brb gotta queue up"]
    drifting = [in_voice[0], JON_REPLY, "What's done is done; to bed, my lord."]
    steady = style_model.consistency(in_voice, "kai_tanaka")
    wobbly = style_model.consistency(drifting, "kai_tanaka")
    assert 0.0 <= wobbly < steady <= 1.0
    with pytest.raises(ValueError):
        style_model.consistency([], "kai_tanaka")


def test_unknown_characters_are_an_error(style_model: StyleModel) -> None:
    with pytest.raises(KeyError):
        style_model.score("hi", "nobody")


def test_training_needs_sample_lines() -> None:
    with pytest.raises(ValueError):
        StyleModel.train([CharacterSheet(name="Mute")])


# --- register markers --------------------------------------------------------------------------

# The same line with and without the markers a person hears at once, per character.
MARKED = [
    (
        "sara_wilcox",
        "Nay, thou couldst not know it; mayhaps 'tis better so, for thy heart hath no stomach "
        "for such work.",
        "No, you could not know it; maybe it is better so, for your heart has no stomach for "
        "such work.",
    ),
    (
        "jon_johns",
        "Are you fucking kidding me? That deal was shit and you know it, so get the hell out of "
        "my office.",
        "Are you kidding me? That deal was bad and you know it, so get out of my office.",
    ),
    (
        "mack_dorsey",
        "Rain again. Cold coffee. No clients. Figures.",
        "It is raining again, the coffee has gone cold and there are no clients, which figures.",
    ),
    (
        "kai_tanaka",
        "lol ngl thats lowkey mid tbh, idk why ur hyped fr",
        "Honestly, that is a bit mediocre to be truthful; I do not know why you are excited.",
    ),
    (
        "bess_tolliver",
        "Aye, ye scallywag, I counted 'em twice an' there be forty casks o' rum, not a drop more.",
        "Yes, you rascal, I counted them twice and there are forty barrels of rum, not a drop "
        "more.",
    ),
]


@pytest.mark.parametrize(("slug", "marked", "bare"), MARKED, ids=[m[0] for m in MARKED])
def test_a_line_full_of_the_right_markers_scores_above_the_same_line_without_them(
    style_model: StyleModel, slug: str, marked: str, bare: str
) -> None:
    with_markers = style_model.score(marked, slug)
    without = style_model.score(bare, slug)
    assert with_markers.probability > without.probability
    # Not a photo finish: the markers move the odds by a factor of e (2.7) at least.
    assert with_markers.log_odds - without.log_odds > 1.0


def test_markers_of_another_voice_count_against_a_character(style_model: StyleModel) -> None:
    archaic = "Thou art a fool, and thy deal hath no worth; get thee hence."
    plain = "You are a fool, and your deal has no worth; get out of here."
    assert style_model.score(archaic, "jon_johns").probability < (
        style_model.score(plain, "jon_johns").probability
    )


def test_archaic_forms_count_even_when_the_sample_lines_never_used_them() -> None:
    # couldst, mayhaps, nay and knoweth are in none of Sara's lines; the class generalises.
    hits, units = marker_counts(clean("Nay, mayhaps he couldst; who knoweth? Beneath my teeth."))
    counted = dict(zip(MARKER_CLASSES, hits, strict=True))
    assert counted["archaic"] == 4  # not "beneath" nor "teeth"
    assert units[MARKER_CLASSES.index("archaic")] == 9
    assert units[MARKER_CLASSES.index("clipped")] == 2  # two sentences


def test_chat_slang_swearing_dialect_and_clipped_sentences_are_counted() -> None:
    text = "lmaooo ngl u r wild. Damn. Countin' 'em, matey, an' I'm done!"
    counted = dict(zip(MARKER_CLASSES, marker_counts(clean(text))[0], strict=True))
    assert counted["chat_slang"] == 4  # lmaooo ngl u r
    assert counted["swearing"] == 1
    assert counted["sea_dialect"] == 3  # 'em matey an'
    assert counted["dropped_g"] == 1
    assert counted["contraction"] == 1  # I'm
    assert counted["clipped"] == 1  # "Damn."; the others have five and six words


# --- odd text ----------------------------------------------------------------------------------


def test_typographic_quotes_and_dashes_change_nothing(style_model: StyleModel) -> None:
    straight = "I don't do favors - I do jobs. 'Jobs' cost money."
    curly = "I don\u2019t do favors \u2014 I do jobs. \u2018Jobs\u2019 cost money."
    assert style_model.score(curly, "mack_dorsey") == style_model.score(straight, "mack_dorsey")


@pytest.mark.parametrize(
    "text",
    [
        "\ufeffthou\u200b art\u200d a \u2066fool\u2069",  # BOM, zero-width, bidi isolates
        "\uff34\uff48\uff4f\uff55 art a fool",  # full-width letters
        "e\u0301te\u0301 \U0001f600\U0001f3f4\u200d\u2620\ufe0f \u05e9\u05dc\u05d5\u05dd",
        "\x00\x07 control \x1b[31m characters",
        "\ud800 a lone surrogate",
    ],
)
def test_odd_unicode_scores_without_error(style_model: StyleModel, text: str) -> None:
    score = style_model.score(text, "sara_wilcox")
    assert 0.0 <= score.probability <= 1.0
    assert 0.0 <= score.distance <= 2.0


def test_invisible_characters_do_not_change_a_score(style_model: StyleModel) -> None:
    assert style_model.score("\ufeffthou\u200b art a fool", "sara_wilcox") == style_model.score(
        "thou art a fool", "sara_wilcox"
    )
