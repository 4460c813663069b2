"""The local style metric: held-out accuracy on the bundled cast, determinism, direction."""

from __future__ import annotations

import pytest

from personaweb.characters.sheet import CharacterSheet
from personaweb.characters.style import StyleModel, heldout_accuracy

JON_REPLY = (
    "Who gives a shit about AI, pal? If it can't make me money it's a waste of my "
    "goddamn time. Now get the fuck out of my office."
)


def test_heldout_accuracy_on_the_bundled_cast_is_at_least_80_percent(
    bundled: list[CharacterSheet],
) -> None:
    accuracy = heldout_accuracy(bundled, folds=5)
    print(f"held-out accuracy over {len(bundled)} characters, 5 folds: {accuracy:.3f}")
    assert accuracy >= 0.80


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
