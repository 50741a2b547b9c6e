#!/usr/bin/env python3
"""Share of a request handler's sampled thread time spent in given frames, from a speedscope
trace made by `dotnet-trace collect --profile dotnet-sampled-thread-time --format Speedscope`.
Usage: profile-share.py TRACE.speedscope.json ROOT_FRAME NAME=FRAGMENT[|FRAGMENT...] ...
A sample counts for NAME when any frame at or below ROOT_FRAME contains one of the fragments."""
import json
import sys

trace, root, groups = sys.argv[1], sys.argv[2], [g.split("=", 1) for g in sys.argv[3:]]
document = json.load(open(trace))
frames = [f["name"] for f in document["shared"]["frames"]]
total, shares = 0.0, {name: 0.0 for name, _ in groups}
for profile in document["profiles"]:
    stack, last = [], profile.get("startValue", 0)
    for event in profile.get("events", []):
        names = [frames[i] for i in stack]
        below = next((names[i:] for i, n in enumerate(names) if root in n), None)
        if below is not None:
            duration = event["at"] - last
            total += duration
            for name, fragments in groups:
                if any(f in n for n in below for f in fragments.split("|")):
                    shares[name] += duration
        last = event["at"]
        if event["type"] == "O":
            stack.append(event["frame"])
        else:
            stack.pop()
if total == 0:
    sys.exit(f"no samples under {root}")
for name, _ in groups:
    print(f"{name}: {100 * shares[name] / total:.1f}% of {root} time")
