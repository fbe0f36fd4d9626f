#!/usr/bin/env python3
"""Write sample click-stream events, one JSON object per line.

    python3 examples/clickstream/gen_events.py [DIR] [COUNT]

DIR/page-views.jsonl: {"user_id", "url", "ts" (epoch ms), "is_bot"}; one in
ten is a bot and is dropped.
DIR/user-events.jsonl: {"event_id", "user_id", "event_type", "amount", "ts"};
about a third are purchases, the rest (view, add_to_cart) are dropped.
DIR/user-profiles.jsonl: {"_id" (a user_id), "plan", "country"} for the
first 250 of the 300 users; the purchases pipeline looks them up in MongoDB
(analytics.user_profiles), where

    python3 examples/clickstream/gen_events.py --load-profiles [DIR] [MONGODB_URI]

puts them (with pymongo; replacing documents of the same _id).
"""
import json
import os
import random
import sys

if len(sys.argv) > 1 and sys.argv[1] == "--load-profiles":
    import pymongo

    src = sys.argv[2] if len(sys.argv) > 2 else "."
    uri = sys.argv[3] if len(sys.argv) > 3 else "mongodb://127.0.0.1:17017/"
    profiles = pymongo.MongoClient(uri).analytics.user_profiles
    with open(os.path.join(src, "user-profiles.jsonl")) as f:
        docs = [json.loads(line) for line in f if line.strip()]
    for doc in docs:
        profiles.replace_one({"_id": doc["_id"]}, doc, upsert=True)
    print(f"loaded {len(docs)} profiles into analytics.user_profiles")
    sys.exit(0)

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
with open(os.path.join(out, "user-profiles.jsonl"), "w") as f:
    for u in range(250):
        f.write(json.dumps({
            "_id": f"u{u:04}",
            "plan": rng.choice(["free", "plus", "pro"]),
            "country": rng.choice(["DE", "FR", "JP", "US", "BR"]),
        }) + "\n")
print(f"wrote {count} page views, {count} user events and 250 profiles to {out}")
