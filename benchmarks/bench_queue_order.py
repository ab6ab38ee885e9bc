"""How often six trainings that wait for one slot start in the order they asked: a plain semaphore polled with a
timeout (as a job that watches its Stop button polls) against `explorer.training.FairSlots`.

    python benchmarks/bench_queue_order.py [--trials 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.training import FairSlots  # noqa: E402

WAITERS = 6


def trial(kind: str, rng: random.Random) -> bool:
    """One round: a holder, six waiters arriving 13 ms apart, a release at a random moment; True when served in order."""
    slots = threading.BoundedSemaphore(1) if kind == "semaphore" else FairSlots(1)
    slots.acquire()
    order: list[int] = []
    arrived: list[int] = []

    def waiter(i: int) -> None:
        if isinstance(slots, FairSlots):
            ticket = slots.enqueue()
            arrived.append(i)
            while not slots.wait(ticket, timeout=0.1):
                pass
        else:
            arrived.append(i)
            while not slots.acquire(timeout=0.1):
                pass
        order.append(i)
        time.sleep(rng.uniform(0.05, 0.15))  # a (very short) training
        slots.release()

    threads = []
    for i in range(WAITERS):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        while len(arrived) <= i:
            time.sleep(0.001)
        time.sleep(0.013)
    time.sleep(rng.uniform(0.2, 0.5))
    slots.release()
    for t in threads:
        t.join()
    return order == list(range(WAITERS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(0)
    for kind in ("semaphore", "fair"):
        ok = sum(trial(kind, rng) for _ in range(args.trials))
        print(f"{kind:9s}: {ok}/{args.trials} rounds served {WAITERS} waiters in the order they asked")


if __name__ == "__main__":
    main()
