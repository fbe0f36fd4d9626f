#!/usr/bin/env python3
"""Write sample sensor readings (JSON lines) for the iot-telemetry example.

usage: gen_readings.py [OUT] [--devices N] [--per-device M]

Readings are spread over the last hour, mix units (C, F, K) and ISO-8601 /
epoch-millisecond timestamps, include a few hot readings (alerts) and a few
invalid ones (dead letters). The same seed gives the same file apart from
the times, which follow the clock so the 30-day TTL keeps the rows.
"""

import argparse
import json
import random
import time
from datetime import datetime, timezone


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="readings.jsonl")
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--per-device", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    now_ms = int(time.time() * 1000)
    lines = []
    for d in range(args.devices):
        device = f"sensor-{d:03d}"
        unit = ["C", "F", "K"][d % 3]
        for i in range(args.per_device):
            ts = now_ms - (args.per_device - i) * 60_000 - rng.randrange(1000)
            celsius = rng.gauss(22.0, 4.0)
            if rng.random() < 0.02:
                celsius = 45.0 + rng.random() * 10  # a hot reading: alert
            temp = {"C": celsius, "F": celsius * 9 / 5 + 32, "K": celsius + 273.15}[unit]
            reading = {
                "deviceId": device,
                "timestamp": ts
                if i % 2
                else datetime.fromtimestamp(ts / 1000, timezone.utc).isoformat(timespec="milliseconds"),
                "temperature": round(temp, 2),
                "unit": unit,
                "humidity": round(min(100.0, max(0.0, rng.gauss(45.0, 10.0))), 1),
                "battery": round(3.0 + rng.random() * 0.7, 2),
            }
            if rng.random() < 0.01:
                reading["humidity"] = 150.0  # invalid: dead letter
            if rng.random() < 0.005:
                del reading["deviceId"]  # invalid: dead letter
            lines.append(json.dumps(reading))
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} readings to {args.out}")


if __name__ == "__main__":
    main()
