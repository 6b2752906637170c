"""Starts LocalStack as `python -m localstack.runtime.main` does and, once it is ready, moves the
objects of its start-up into the garbage collector's permanent generation (`gc.freeze`).

Why: CPython's full collections walk every tracked object. After its start LocalStack holds about
860,000 that live as long as the process (service specifications, plugins), and every full
collection walked them all again: 0.4-0.7 s in which the queue service answered no call, one
every few thousand messages. `bench relay` saw all 16 calls in flight stall together for
0.6-0.7 s, once in each phase that came after the threshold, and py-spy put 27 % of LocalStack's
GIL time in `gc_collect_main`. Frozen objects are not walked again: the full collections of what
came later took 8-85 ms. Real SQS has no such pauses, and a benchmark should not measure which
of its phases the collector happened to fall into.

Everything else is as with `-m localstack.runtime.main`: the same module, the same environment.
Without `localstack.runtime.events` (another LocalStack version) it runs unfrozen.
"""

import gc
import runpy
import sys
import threading

try:
    from localstack.runtime import events
except ImportError:
    events = None


def freeze_when_ready() -> None:
    """Waits until LocalStack is ready, collects once, and freezes what is left."""
    events.infra_ready.wait()
    gc.collect()
    gc.freeze()


if events is not None:
    threading.Thread(target=freeze_when_ready, name="gc-freeze", daemon=True).start()
sys.argv = sys.argv[:1]
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
