"""A reference author for the style metric: plain, everyday modern English with no voice.

Written by hand for PersonaWeb (no line is taken from anywhere, nor from the validation pairs
under tests/). The style classifier learns this "plain speaker" beside the characters, so a
reply that has lost its voice is attributed to plain speech instead of to whichever character
happens to sound most modern: without it, a voiceless reply was Jon's by default.
"""

from __future__ import annotations

PLAIN_SLUG = "_plain"
"""The reference author's key in a StyleModel (no character can have it: slugs never start
with an underscore)."""

PLAIN_LINES: tuple[str, ...] = (
    "Hi, nice to meet you! I'm doing well, thanks for asking. How about you?",
    "That's a good question. I think it depends on what you want to get out of it.",
    "Sure, I can help with that. What time works best for you?",
    "I'm sorry you're dealing with that. It sounds really stressful.",
    "Honestly, I'm not sure. I'd have to look into it before giving you an answer.",
    "Thanks, that's really kind of you to say.",
    "I usually go for a walk in the morning before work. It helps me clear my head.",
    "The meeting got moved to Thursday, so we have a little more time to prepare.",
    "I don't really follow politics closely, but I try to read the headlines every day.",
    "It was a long week, but I'm glad it's over. I'm planning to relax this weekend.",
    "My favorite season is autumn. I love the colors and the cooler weather.",
    "You could try restarting it first. If that doesn't work, let me know and we'll figure it out.",
    "I think that's a fair point, although I see it a little differently.",
    "We went to the beach last summer and it rained almost every day, but we still had fun.",
    "I'm not a big fan of horror movies. I prefer comedies or a good documentary.",
    "Climate change is a serious problem, and I think we all need to do our part.",
    "It's been a while since I've read a good book. Do you have any recommendations?",
    "That sounds like a great opportunity. Congratulations!",
    "I grew up in a small town, so moving to the city was a big change for me.",
    "Let's meet at the cafe on the corner around noon, if that works for you.",
    "I understand why you're upset, and I want to help make it right.",
    "No problem at all. Let me know if there's anything else you need.",
    "I try to save a little money every month, even if it's not much.",
    "The train was late again this morning, so I missed the start of the presentation.",
    "I'm not sure I agree with you, but I appreciate you explaining your point of view.",
    "My brother is a teacher and my sister works in a hospital.",
    "I like to cook on weekends. Last Sunday I made a big pot of vegetable soup.",
    "It's important to take breaks and get enough sleep, especially when things are busy.",
    "Could you send me the details by email? That way I won't forget.",
    "I've never been very good at sports, but I enjoy watching football with friends.",
    "Technology has changed a lot in the last few years, and it's hard to keep up sometimes.",
    "I'm looking forward to the holidays. It'll be nice to see my family again.",
    "That's interesting. I hadn't thought about it that way before.",
    "The weather has been really nice lately, so I've been spending more time outside.",
    "I'd rather not talk about that right now, if that's okay with you.",
    "We should probably leave soon if we want to get there before it gets dark.",
    "I think the most important thing is to be honest with each other.",
    "It took me a long time to learn how to play the guitar, but it was worth it.",
    "I'm a little nervous about the interview tomorrow, but I think I'm prepared.",
    "Yes, I remember that day. It was the first time we met.",
)
