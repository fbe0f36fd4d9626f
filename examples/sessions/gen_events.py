#!/usr/bin/env python3
"""Write sample session events, one JSON object per line.

    python3 examples/sessions/gen_events.py [FILE] [COUNT]

Each line is {"session_id", "user_id", "device", "ip", "page_count",
"started_at"}; about one in fifty lacks its user_id (those go to the
dead-letter file).
"""
import json
import random
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "sessions.jsonl"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
rng = random.Random(7)
with open(path, "w") as f:
    for i in range(count):
        event = {
            "session_id": f"s{i:06}",
            "user_id": f"u{rng.randrange(200):04}",
            "device": rng.choice(["web", "ios", "android"]),
            "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            "page_count": rng.randrange(1, 40),
            "started_at": 1_763_700_000_000 + i * 1000,
        }
        if i % 50 == 49:
            del event["user_id"]
        f.write(json.dumps(event) + "\n")
print(f"wrote {count} events to {path}")
