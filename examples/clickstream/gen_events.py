#!/usr/bin/env python3
"""Write sample click-stream events, one JSON object per line.

    python3 examples/clickstream/gen_events.py [DIR] [COUNT]

DIR/page-views.jsonl: {"user_id", "url", "ts" (epoch ms), "is_bot"}; one in
ten is a bot and is dropped.
DIR/user-events.jsonl: {"event_id", "user_id", "event_type", "amount", "ts"};
about a third are purchases, the rest (view, add_to_cart) are dropped.
"""
import json
import os
import random
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "."
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
rng = random.Random(11)
start = 1_763_700_000_000  # 2025-11-21
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "page-views.jsonl"), "w") as f:
    for i in range(count):
        f.write(json.dumps({
            "user_id": f"u{rng.randrange(300):04}",
            "url": f"/products/{rng.randrange(50)}",
            "ts": start + i * 500,
            "is_bot": i % 10 == 9,
        }) + "\n")
with open(os.path.join(out, "user-events.jsonl"), "w") as f:
    for i in range(count):
        kind = rng.choice(["purchase", "view", "add_to_cart"])
        f.write(json.dumps({
            "event_id": f"ev{i:07}",
            "user_id": f"u{rng.randrange(300):04}",
            "event_type": kind,
            "amount": round(rng.uniform(1, 200), 2) if kind == "purchase" else 0,
            "ts": start + i * 500,
        }) + "\n")
print(f"wrote {count} page views and {count} user events to {out}")
