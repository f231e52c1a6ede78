#!/usr/bin/env python3
"""A churning fleet for the state-eviction benchmark (issue 15).

usage: gen_churn.py DEVICES ACTIVE EVENTS OUT

Writes JSON lines in event-time order: DEVICES devices whose first events are spread evenly
over 24 h of event time, each reporting EVENTS events (seq 0..EVENTS-1) over a stretch of
24 h * ACTIVE / DEVICES, so about ACTIVE devices report at any moment. Values stay in
20.0..27.9, so the `max > 80` rule never fires (the state measured is the devices' own).
The issue's case: gen_churn.py 3000000 100000 20 churn.jsonl (60 M events, 5.4 GB).
"""
import heapq
import sys


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit("usage: gen_churn.py DEVICES ACTIVE EVENTS OUT")
    n, active, k = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    t0, day = 1_700_000_000_000, 86_400_000
    life = day * active // n
    out = open(sys.argv[4], "w")
    line = '{"device":"dev-%07d","metric":"temperature","ts":%d,"value":%.2f,"seq":%d}\n'
    heap = []

    def emit_until(limit):
        while heap and heap[0][0] < limit:
            ts, d, j = heapq.heappop(heap)
            out.write(line % (d, ts, 20 + (d % 50) / 10 + j % 3, j))
            if j + 1 < k:
                heapq.heappush(heap, (ts + life // k, d, j + 1))

    for i in range(n):
        heapq.heappush(heap, (t0 + i * day // n, i, 0))
        emit_until(t0 + (i + 1) * day // n)
    emit_until(float("inf"))


if __name__ == "__main__":
    main()
