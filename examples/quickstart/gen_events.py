#!/usr/bin/env python3
"""Write the quickstart's demo events: one JSON object per line.

Deterministic (fixed seed), so every run of the demo sees the same events
and prints the same summary. Usage:

    python3 examples/quickstart/gen_events.py [OUT] [--count 3000]

Each event is ~300 bytes: an id, a user, an event type (purchase, view,
click, signup), the user's email (masked by the transform plugin), an
amount for purchases, and some context fields.
"""

import argparse
import json
import os
import random

FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
LAST = ["smith", "jones", "martin", "garcia", "muller", "rossi", "dubois", "novak"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net"]
COUNTRIES = ["FR", "DE", "US", "GB", "ES", "IT", "NL", "PL"]
PAGES = ["/", "/search", "/product/42", "/product/7", "/cart", "/checkout", "/help"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0",
]
# Weights: many views and clicks, fewer purchases, few signups.
TYPES = [("view", 45), ("click", 30), ("purchase", 18), ("signup", 7)]


def event(rng: random.Random, n: int) -> dict:
    user = rng.randrange(1, 400)
    first, last = FIRST[user % len(FIRST)], LAST[user % len(LAST)]
    event_type = rng.choices([t for t, _ in TYPES], weights=[w for _, w in TYPES])[0]
    ev = {
        "event_id": f"evt-{n:06d}",
        "user_id": f"user-{user:04d}",
        "event_type": event_type,
        "email": f"{first}.{last}{user}@{DOMAINS[user % len(DOMAINS)]}",
        "country": COUNTRIES[user % len(COUNTRIES)],
        "ts": f"2026-11-21T{6 + n // 3600 % 12:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "page": rng.choice(PAGES),
        "session_id": f"s-{rng.getrandbits(48):012x}",
        "user_agent": rng.choice(AGENTS),
    }
    if event_type == "purchase":
        ev["amount"] = round(rng.uniform(3, 400), 2)
        ev["currency"] = "EUR"
        ev["items"] = rng.randrange(1, 6)
    return ev


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="number of events")
    parser.add_argument(
        "out", nargs="?", default=os.path.join(here, "events.jsonl"), help="output file"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        for n in range(args.count):
            f.write(json.dumps(event(rng, n), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
