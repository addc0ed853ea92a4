"""A generator of short, simple English stories: the demo model's license-clean training text.

Every story is drawn from a small grammar with consistent characters (a name keeps its pronoun,
a pet keeps its kind), so a model of a few million parameters learns to continue it readably.
The same generator with other seeds gives the held-out evaluation and calibration texts.
"""

from __future__ import annotations

import random

__all__ = ["END_OF_TEXT", "generate_stories"]

END_OF_TEXT = "<|endoftext|>"

_GIRLS = ["Mia", "Lily", "Emma", "Sara", "Anna", "Zoe", "Ella", "Nora", "Ruby", "Maya"]
_BOYS = ["Tom", "Ben", "Leo", "Max", "Sam", "Jack", "Noah", "Finn", "Oscar", "Eli"]
_PETS = ["dog", "cat", "bird", "rabbit", "frog", "duck", "fox", "turtle"]
_ADJ = ["little", "small", "big", "happy", "sleepy", "brave", "funny", "kind", "shy", "old"]
_COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "pink", "white"]
_TOYS = ["ball", "kite", "boat", "car", "doll", "drum", "hat", "box", "book", "robot"]
_PLACES = [
    "park",
    "garden",
    "forest",
    "beach",
    "farm",
    "lake",
    "hill",
    "village",
    "market",
    "river",
]
_FOODS = ["apples", "bread", "cake", "soup", "cookies", "berries", "plums", "carrots"]
_FEELINGS = ["happy", "sad", "scared", "excited", "tired", "proud", "surprised"]
_WEATHER = [
    "the sun was warm",
    "it was raining",
    "the wind was strong",
    "the sky was blue",
    "snow was falling",
    "the clouds were grey",
]
_HELPERS = ["mom", "dad", "grandma", "grandpa", "teacher", "friend"]
_PROBLEMS = [
    ("lost", "could not find the way home"),
    ("stuck", "was stuck in a tall tree"),
    ("hungry", "had not eaten all day"),
    ("cold", "was shaking in the wind"),
    ("alone", "had no one to play with"),
]
_LESSONS = [
    "helping others makes everyone happy",
    "it is good to share",
    "being brave is not the same as not being scared",
    "friends can make any day better",
    "it is kind to listen",
    "small things can matter a lot",
]


class _Story:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        girl = rng.random() < 0.5
        self.name = rng.choice(_GIRLS if girl else _BOYS)
        self.he, self.his, self.him = ("she", "her", "her") if girl else ("he", "his", "him")
        self.friend = rng.choice([n for n in (_BOYS if girl else _GIRLS)])
        self.pet = rng.choice(_PETS)
        self.toy = rng.choice(_TOYS)
        self.color = rng.choice(_COLORS)
        self.place = rng.choice(_PLACES)
        self.food = rng.choice(_FOODS)
        self.helper = rng.choice(_HELPERS)

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)

    def cap(self, text: str) -> str:
        return text[0].upper() + text[1:]

    def opening(self) -> str:
        adj = self.rng.choice(_ADJ)
        kind = "girl" if self.he == "she" else "boy"
        return self.pick(
            f"Once upon a time, there was a {adj} {kind} named {self.name}.",
            f"{self.name} was a {adj} {kind} who lived near the {self.place}.",
            f"One morning, {self.name} woke up and saw that {self.rng.choice(_WEATHER)}.",
            f"There once was a {kind} called {self.name} who loved "
            f"{self.pick('to play', 'to run', 'to sing', 'to read')}.",
        )

    def setting(self) -> str:
        return self.pick(
            f"{self.cap(self.he)} had a {self.color} {self.toy} that {self.he} took everywhere.",
            f"Every day, {self.he} went to the {self.place} with {self.his} {self.helper}.",
            f"{self.cap(self.his)} best friend was {self.friend}, and they liked to play together.",
            f"{self.cap(self.he)} liked to eat {self.food} and to look at the birds in the sky.",
        )

    def problem(self) -> list[str]:
        state, detail = self.rng.choice(_PROBLEMS)
        adj = self.rng.choice(_ADJ)
        return [
            f"One day, {self.name} went to the {self.place} and saw a {adj} {self.pet}.",
            f"The {self.pet} was {state}. It {detail}.",
            self.pick(
                f"{self.name} felt {self.pick('sad', 'worried')} for the {self.pet}.",
                f'"Oh no," said {self.name}. "What can I do?"',
                f"{self.name} wanted to help the {self.pet}.",
            ),
        ]

    def action(self) -> list[str]:
        return self.rng.choice(
            [
                [
                    f"{self.cap(self.he)} gave the {self.pet} some {self.food}.",
                    f"The {self.pet} ate the {self.food} and felt much better.",
                ],
                [
                    f"{self.cap(self.he)} asked {self.his} {self.helper} for help.",
                    f"Together, they helped the {self.pet} and took it home.",
                ],
                [
                    f"{self.cap(self.he)} called {self.friend}, and {self.friend} came to help.",
                    f"{self.friend} and {self.name} worked together until the {self.pet} was safe.",
                ],
                [
                    f"{self.cap(self.he)} was scared, but {self.he} was brave.",
                    f'{self.cap(self.he)} walked slowly to the {self.pet} and said, "Do not be '
                    'afraid. I will help you."',
                ],
            ]
        )

    def ending(self) -> list[str]:
        feeling = self.rng.choice(["happy", "proud", "glad"])
        return [
            self.pick(
                f"The {self.pet} was {feeling} and played with {self.name} and {self.his} "
                f"{self.color} {self.toy}.",
                f"From that day on, the {self.pet} and {self.name} were best friends.",
                f"At the end of the day, {self.name} went home and told {self.his} {self.helper} "
                "everything.",
            ),
            f"{self.name} learned that {self.rng.choice(_LESSONS)}.",
        ]

    def dialogue(self) -> list[str]:
        return [
            f'"Can we go to the {self.place}?" asked {self.name}.',
            self.pick(
                f'"Yes, but first eat your {self.food}," said {self.his} {self.helper}.',
                f'"Not today, it is late," said {self.his} {self.helper}.',
                f'"Of course," said {self.his} {self.helper} with a smile.',
            ),
            f"{self.name} felt {self.rng.choice(_FEELINGS)}.",
        ]

    def tell(self) -> str:
        sentences = [self.opening(), self.setting()]
        if self.rng.random() < 0.4:
            sentences += self.dialogue()
        sentences += self.problem() + self.action() + self.ending()
        return " ".join(sentences)


def generate_stories(count: int, seed: int) -> list[str]:
    """``count`` stories drawn with ``seed`` (the same seed always gives the same stories)."""
    rng = random.Random(seed)
    return [_Story(rng).tell() for _ in range(count)]
