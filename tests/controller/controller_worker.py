"""A controller process for the two-controller test.

Its target plays the data plane's fencing role across processes: it keeps,
in a shared file under an exclusive lock, the newest token each service has
seen, rejects older ones (as the local router does) and logs every attempt.
Now and then the controller stalls between persisting and acting for longer
than its lease, so another controller takes the rollout over meanwhile.
"""

from __future__ import annotations

import fcntl
import os
import random
import sys
import threading
import time
from pathlib import Path

from primum.adapters.store.repository import Store
from primum.adapters.targets.base import StaleFenceError
from primum.adapters.targets.noop import NoopTarget
from primum.adapters.targets.registry import Targets
from primum.app.controller import Controller


class SharedFenceTarget(NoopTarget):
    def __init__(self, log: Path, owner: str):
        super().__init__()
        self.log = log
        self.owner = owner

    def apply(self, action, spec, fence):
        if random.random() < 0.2:
            time.sleep(0.8)  # a stall longer than the lease
        key = f"{spec.estate}/{spec.env}/{spec.service}"
        with open(self.log, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            newest = 0
            for line in fh.read().splitlines():
                verdict, _, k, f = line.split()
                if k == key and verdict == "ok":
                    newest = max(newest, int(f))
            verdict = "stale" if fence < newest else "ok"
            fh.write(f"{verdict} {self.owner} {key} {fence}\n")
            fh.flush()
        if verdict == "stale":
            raise StaleFenceError(f"{key}: fence {fence} < {newest}")
        super().apply(action, spec, fence)


class Shared(Targets):
    def __init__(self, target):
        super().__init__(Path("."))
        self.target = target

    def for_service(self, estate, service):
        return self.target


def main() -> None:
    url, log, n, seconds = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    owner = f"controller-{n}-{os.getpid()}"
    store = Store(url, migrate=False)
    controller = Controller(store, Shared(SharedFenceTarget(log, owner)), owner=owner, lease_ttl=0.5, batch=4)
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    controller.run(stop, idle=0.05)
    store.close()


if __name__ == "__main__":
    main()
