"""A built-in corpus of passages of fictional facts, generated deterministically from a seed.

Every name, date and quantity is invented, so no pretrained model can know the answers beforehand:
accuracy on the questions (asked without the passage) measures only what a fine-tuning update taught.
Each question names its passage's main entity, so it is answerable by someone who memorised the passage,
and each gold answer is short and appears verbatim in the passage. No gold answer of one split is a gold
answer of another (each split draws trades and industries from its own share of the pools, and a number
or year another split answers with is drawn again), so a policy trained on one split cannot gain on
another from priors over its answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import pairwise

SPLITS = ("train", "validation", "test")
_SPLIT_SIZES = {"train": 96, "validation": 24, "test": 48}

# Syllables chosen to read as pronounceable but unfamiliar; words are concatenations of them.
_SYLLABLES = (
    "bra", "cor", "dal", "dre", "el", "fen", "gar", "hal", "is", "jor", "kel", "lor", "mir", "nav",
    "or", "pel", "quo", "ras", "sel", "tam", "ul", "ven", "wyn", "yar", "zel", "tho", "vri", "ask",
    "bel", "dun", "ith", "kor", "mal", "ner", "os", "pri", "rin", "sav", "tev", "vor", "ys", "ae",
)  # fmt: skip
_SURNAME_ENDINGS = ("ek", "ane", "ow", "is", "en", "ard", "ix", "ul")
_TOWN_SUFFIXES = ("wick", "holm", "mere", "gard", "stead", "brook", "moor", "fell")
_REGION_KINDS = ("Vale", "Reach", "Marches", "Downs", "Fells", "Lowlands")
_ORG_GOODS = ("Lantern", "Rope", "Glass", "Clock", "Ink", "Loom", "Compass", "Bell", "Soap", "Barometer")
_ORG_KINDS = ("Company", "Works", "Guild", "Foundry", "Trading House")
_PRODUCTS = ("stove", "lamp", "kettle", "sextant", "typewriter", "bicycle", "telescope", "music box")
# Pools whose entries are gold answers: split i draws from the entries at positions i, i + 3, i + 6, ...
_TRADES = (
    "clockmaker",
    "glassblower",
    "cartographer",
    "bookbinder",
    "surveyor",
    "apothecary",
    "engraver",
    "cooper",
    "wheelwright",
    "locksmith",
    "tanner",
    "chandler",
    "saddler",
    "printer",
    "weaver",
    "potter",
    "mason",
    "farrier",
)
_INDUSTRIES = (
    "bell casting",
    "salt mining",
    "paper milling",
    "wool dyeing",
    "cheese aging",
    "rope making",
    "glass blowing",
    "tin smelting",
    "cider pressing",
    "lace making",
    "boat building",
    "brick firing",
    "silk weaving",
    "ink grinding",
    "pewter casting",
    "slate quarrying",
    "barrel making",
    "candle dipping",
)
_SUBJECTS = ("tidal mills", "lens grinding", "bridge design", "bee keeping", "star charts", "dye making")
_SETTLEMENTS = ("market", "river", "hill", "harbour", "mining", "border")
_RIGS = ("schooner", "brig", "barque", "sloop", "clipper")
_SHIP_NOUNS = ("Heron", "Star", "Dawn", "Petrel", "Crown", "Osprey", "Swan", "Gull")

Passage = dict[str, object]


class _Namer:
    """Invents syllable names and never reuses a word, so entities never collide within or across splits."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int, suffix: str = "") -> str:
        while True:
            parts = [self.rng.choice(_SYLLABLES) for _ in range(syllables)]
            word = ("".join(parts) + suffix).capitalize()
            if word not in self.used and all(a != b for a, b in pairwise(parts)):
                self.used.add(word)
                return word

    def person(self) -> str:
        given = self.word(self.rng.randint(2, 3))
        return f"{given} {self.word(2, self.rng.choice(_SURNAME_ENDINGS))}"

    def town(self) -> str:
        return self.word(self.rng.randint(1, 2), self.rng.choice(_TOWN_SUFFIXES))

    def region(self) -> str:
        return f"{self.word(2)} {self.rng.choice(_REGION_KINDS)}"

    def organisation(self) -> str:
        return f"{self.word(2)} {self.rng.choice(_ORG_GOODS)} {self.rng.choice(_ORG_KINDS)}"

    def product(self) -> str:
        return f"{self.word(2)} {self.rng.choice(_PRODUCTS)}"


class _Answers:
    """Draws one split's answers: trades and industries from the split's share of each pool, numbers and
    years anew until no other split answers with them (repeats within a split are fine)."""

    def __init__(self, rng: random.Random, owners: dict[str, str], split: str) -> None:
        self.rng = rng
        self.owners = owners
        self.split = split

    def number(self, low: int, high: int) -> int:
        for _ in range(10_000):
            value = self.rng.randint(low, high)
            if self.owners.setdefault(str(value), self.split) == self.split:
                return value
        raise RuntimeError(f"no number in [{low}, {high}] is free for split {self.split}")

    def choice(self, pool: tuple[str, ...]) -> str:
        return self.rng.choice(pool[SPLITS.index(self.split) :: len(SPLITS)])


def _passage(title: str, context: str, qa: list[tuple[str, object]]) -> Passage:
    return {
        "title": title,
        "context": context,
        "questions": [{"question": q, "answer": str(a)} for q, a in qa],
    }


def _person(names: _Namer, rng: random.Random, answers: _Answers) -> Passage:
    name, town, org = names.person(), names.town(), names.organisation()
    born = answers.number(1600, 1930)
    founded = answers.number(born + 22, born + 50)
    trade, subject, works = answers.choice(_TRADES), rng.choice(_SUBJECTS), answers.number(3, 90)
    surname, article = name.split()[-1], "an" if trade[0] in "aeiou" else "a"
    context = (
        f"{name} was born in {town} in {born}. Trained as {article} {trade}, {surname} founded the {org} "
        f"in {founded}. Over a long career {surname} published {works} treatises on {subject}."
    )
    return _passage(name, context, [
        (f"In what year was {name} born?", born),
        (f"In which town was {name} born?", town),
        (f"What trade did {name} train in?", trade),
        (f"What organisation did {name} found?", org),
        (f"In what year did {name} found the {org}?", founded),
        (f"How many treatises did {name} publish?", works),
    ])  # fmt: skip


def _town(names: _Namer, rng: random.Random, answers: _Answers) -> Passage:
    town, region, founder = names.town(), names.region(), names.person()
    founded = answers.number(1600, 1880)
    charter = answers.number(founded + 15, founded + 100)
    population, industry = answers.number(2000, 98000), answers.choice(_INDUSTRIES)
    context = (
        f"{town} is a {rng.choice(_SETTLEMENTS)} town in the {region}, founded in {founded} by {founder}. "
        f"It received its charter in {charter} and today has {population} inhabitants. "
        f"The town is best known for its {industry}."
    )
    return _passage(town, context, [
        (f"In what year was {town} founded?", founded),
        (f"In which region is {town}?", region),
        (f"Who founded {town}?", founder),
        (f"In what year did {town} receive its charter?", charter),
        (f"How many inhabitants does {town} have?", population),
        (f"What is {town} best known for?", industry),
    ])  # fmt: skip


def _organisation(names: _Namer, rng: random.Random, answers: _Answers) -> Passage:
    org, founder, town, product = names.organisation(), names.person(), names.town(), names.product()
    founded = answers.number(1600, 1950)
    first_sold = answers.number(founded + 2, founded + 30)
    staff = answers.number(40, 1999)
    context = (
        f"The {org} was founded in {founded} by {founder} in the town of {town}. "
        f"Its best-known product was the {product}, first sold in {first_sold}. "
        f"At its peak the company employed {staff} workers."
    )
    return _passage(org, context, [
        (f"In what year was the {org} founded?", founded),
        (f"Who founded the {org}?", founder),
        (f"In which town was the {org} founded?", town),
        (f"What was the best-known product of the {org}?", product),
        (f"In what year did the {org} first sell its best-known product?", first_sold),
        (f"How many workers did the {org} employ at its peak?", staff),
    ])  # fmt: skip


def _ship(names: _Namer, rng: random.Random, answers: _Answers) -> Passage:
    ship, port, captain = f"{names.word(2)} {rng.choice(_SHIP_NOUNS)}", names.town(), names.person()
    cape = f"Cape {names.word(2)}"
    launched = answers.number(1600, 1950)
    lost = answers.number(launched + 3, launched + 35)
    crew = answers.number(20, 600)
    context = (
        f"The {ship} was a {rng.choice(_RIGS)} built at {port} and launched in {launched}. "
        f"Under Captain {captain} she carried a crew of {crew}. She was lost off {cape} in {lost}."
    )
    return _passage(ship, context, [
        (f"In which port was the {ship} built?", port),
        (f"In what year was the {ship} launched?", launched),
        (f"Who captained the {ship}?", captain),
        (f"How many crew did the {ship} carry?", crew),
        (f"Off which cape was the {ship} lost?", cape),
        (f"In what year was the {ship} lost?", lost),
    ])  # fmt: skip


_TEMPLATES: tuple[Callable[[_Namer, random.Random, _Answers], Passage], ...] = (_person, _town, _organisation, _ship)


def builtin_passages(split: str, seed: int = 0) -> list[dict]:
    """Return the passages of one split; the same (split, seed) always gives the same list.

    The whole corpus is generated in one pass with one name pool and one record of which split answers
    with what, so splits never share an entity or a gold answer. Templates cycle so every split gets an
    even mix of people, towns, organisations and ships.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from train, validation, test")
    rng = random.Random(f"seal-lightning-builtin-{seed}")
    names = _Namer(rng)
    owners: dict[str, str] = {}
    corpus = {
        name: [_TEMPLATES[i % len(_TEMPLATES)](names, rng, _Answers(rng, owners, name)) for i in range(size)]
        for name, size in _SPLIT_SIZES.items()
    }
    return corpus[split]
