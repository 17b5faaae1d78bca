"""A news-topic classification set built here (no download): a headline and its first lines,
five topics, for bench/small_data.py.

Written to be hard in the ways real headlines are: the topics share words ("market",
"record", "growth", "board", "season"), a third of the stories lean on a second topic's
vocabulary (a club's revenue, a hospital's software, a tax on phones), names and numbers are
drawn from shared pools, and no template says its topic's name. Deterministic per seed.
"""

from __future__ import annotations

import random

TOPICS = ["business", "health", "politics", "sports", "technology"]

PEOPLE = ["Maria Lopez", "James Okafor", "Chen Wei", "Anna Kowalski", "Ravi Patel", "Sofia Rossi", "David Kim",
          "Fatima Haddad", "Lucas Martin", "Emma Schmidt", "Tom Becker", "Aisha Bello", "Jonas Berg", "Mei Tanaka"]
PLACES = ["Lyon", "Toronto", "Nairobi", "Osaka", "Denver", "Lisbon", "Manchester", "Perth", "Austin", "Hamburg",
          "Seoul", "Cape Town", "Bogota", "Oslo"]
SHARED = ["record", "market", "growth", "board", "season", "plan", "deal", "report", "launch", "test", "review",
          "crisis", "team", "future", "targets", "results", "pressure", "budget", "network"]

WORDS = {
    "business": dict(
        org=["Northgate Holdings", "Bluewater Foods", "Arcadia Retail", "Pinecrest Bank", "Helios Airlines",
             "Vantage Motors", "Orchard Insurance"],
        thing=["quarterly profit", "shares", "revenue", "dividend", "merger", "sales", "bond yields",
               "earnings", "stock price", "takeover bid", "profit forecast", "supply costs"],
        verb=["jumps", "slides", "beats forecasts", "misses estimates", "doubles", "falls sharply", "recovers"],
        extra=["investors", "analysts", "the central bank", "shareholders", "the stock exchange", "inflation",
               "interest rates", "the chief executive", "retailers", "exporters"]),
    "health": dict(
        org=["St. Mary's Hospital", "the National Health Agency", "Riverside Clinic", "the Heart Foundation",
             "Meridian Pharma", "the Cancer Institute", "the Nursing Council"],
        thing=["vaccine", "flu outbreak", "cancer screening", "heart disease", "clinical trial", "new drug",
               "waiting lists", "diabetes cases", "mental health service", "measles cases", "surgery backlog"],
        verb=["shows promise", "spreads", "is approved", "cuts deaths", "worries doctors", "is delayed", "expands"],
        extra=["patients", "doctors", "nurses", "researchers", "symptoms", "the infection", "treatment",
               "the study", "hospitals", "a blood test"]),
    "politics": dict(
        org=["the parliament", "the ruling coalition", "the opposition party", "the senate", "the ministry",
             "the election commission", "the city council"],
        thing=["election", "tax bill", "coalition talks", "immigration law", "referendum", "cabinet reshuffle",
               "pension reform", "voting reform", "peace treaty", "no-confidence vote", "campaign"],
        verb=["passes", "collapses", "is blocked", "wins support", "sparks protests", "is postponed", "splits"],
        extra=["voters", "lawmakers", "the prime minister", "the president", "ministers", "the polls",
               "a spokesperson", "diplomats", "the governor", "campaigners"]),
    "sports": dict(
        org=["United FC", "the Rovers", "the national side", "City Athletic", "the Falcons", "the Wolves",
             "the Olympic committee"],
        thing=["title race", "cup final", "transfer", "derby", "championship", "world cup qualifier",
               "marathon", "grand slam", "play-off", "injury", "home defeat"],
        verb=["is won", "ends in a draw", "goes to extra time", "is lost", "stuns fans", "is sealed", "collapses"],
        extra=["the coach", "the striker", "the goalkeeper", "fans", "the referee", "the stadium",
               "the captain", "the league", "the manager", "a penalty"]),
    "technology": dict(
        org=["Quantix", "Nimbus Cloud", "Orbital Labs", "Byteforge", "Lumen Devices", "Corely Software",
             "Starlink Robotics"],
        thing=["smartphone", "chip", "software update", "data breach", "AI model", "satellite", "cloud outage",
               "electric battery", "app", "quantum computer", "cyber attack", "search engine"],
        verb=["is unveiled", "crashes", "goes on sale", "is hacked", "is delayed", "beats rivals", "leaks"],
        extra=["engineers", "users", "developers", "the startup", "the algorithm", "the servers", "hackers",
               "the processor", "the platform", "the code"]),
}

HEADLINES = ["{Org} says {thing} {verb}", "{Thing} {verb} as {extra} react", "{Thing} {verb} in {place}",
             "{Person}: {thing} {verb}", "Why the {thing} {verb}", "{Org} {shared} after {thing} {verb}",
             "{Thing} {verb}, {extra} say", "{Place} {thing} {verb} amid {shared} {shared2}"]
LEADS = ["{Person} of {org} said on Monday that the {thing} was {good} than {extra} expected.",
         "In {place}, {extra} described the {thing} as a {shared} moment for {org}.",
         "The {thing} comes after weeks of {shared} {shared2}, with {extra} watching closely.",
         "{Org} confirmed the news late on Tuesday; {extra} had warned about the {thing} for months.",
         "Figures seen by reporters show the {thing} affected {number} people across {place}.",
         "{Extra} in {place} welcomed the {shared}, though {person} urged caution over the {thing}."]
# a sentence that borrows another topic's words (a club's revenue, a hospital's software)
BORROW = ["It also touches on the {thing} that {org} faced last year.",
          "Some {extra} linked it to the {thing} at {org}.",
          "Meanwhile {org} is dealing with its own {thing}."]
GOOD = ["better", "worse", "bigger", "smaller", "faster", "slower"]


def _fill(template: str, words: dict, rng: random.Random) -> str:
    values = {k: rng.choice(v) for k, v in words.items()}
    values.update(person=rng.choice(PEOPLE), place=rng.choice(PLACES), shared=rng.choice(SHARED),
                  shared2=rng.choice(SHARED), good=rng.choice(GOOD), number=f"{rng.randint(2, 900) * 10:,}")
    values.update({k.capitalize(): v[:1].upper() + v[1:] for k, v in list(values.items())})
    return template.format(**values)


def story(topic: str, rng: random.Random, borrow: float = 0.4, mixed: float = 0.25) -> str:
    """A headline and one to three sentences. With probability `borrow` a sentence of another
    topic's words; with `mixed`, the first line after the headline is about another topic too
    (the headline decides, as it does for an editor filing the story)."""
    words = WORDS[topic]
    other = rng.choice([t for t in TOPICS if t != topic])
    lead_words = WORDS[other] if rng.random() < mixed else words
    parts = [_fill(rng.choice(HEADLINES), words, rng) + ".", _fill(rng.choice(LEADS), lead_words, rng)]
    if rng.random() < borrow:
        parts.append(_fill(rng.choice(BORROW), WORDS[other], rng))
    if rng.random() < 0.5:
        parts.append(_fill(rng.choice(LEADS), words, rng))
    return " ".join(parts)


def records(n: int, seed: int, exclude: set[str] | None = None) -> list[dict]:
    """n records, topics balanced, none of whose text is in `exclude` (held-out texts)."""
    rng = random.Random(f"topics-{seed}")
    out, seen = [], set(exclude or ())
    while len(out) < n:
        topic = TOPICS[len(out) % len(TOPICS)]
        text = story(topic, rng)
        if text in seen:
            continue
        seen.add(text)
        out.append({"text": text, "label": topic})
    rng.shuffle(out)
    return out
