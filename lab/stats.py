"""Call statistics: what every account, principal and service was asked, what faults fired, and how long
the lab took to answer each call (its service time: the lab answers one request at a time, so a client
waits for the calls before its own as well)."""

import threading
from collections import defaultdict


def _nested_counter():
    return defaultdict(lambda: defaultdict(lambda: defaultdict(int)))


class CallStats:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self._calls = _nested_counter()
            self._principal_actions = defaultdict(lambda: defaultdict(int))
            self._faults = defaultdict(lambda: defaultdict(int))
            self._errors = defaultdict(int)
            self._total = 0
            self._service_times = []

    def record_call(self, account_id, principal_arn, service, operation):
        with self._lock:
            self._calls[account_id][service][operation] += 1
            if principal_arn:
                self._principal_actions[principal_arn][f"{service}:{operation}"] += 1
            self._total += 1

    def record_service_time(self, service, operation, started_at, seconds):
        """``started_at``: epoch seconds (real time); ``seconds``: how long the lab worked on the call."""
        with self._lock:
            self._service_times.append((round(started_at, 4), round(seconds, 5), f"{service}:{operation}"))

    def service_times(self):
        """[[started at (epoch s), seconds, "service:Operation"]] of every call since the last reset."""
        with self._lock:
            return [list(entry) for entry in self._service_times]

    def record_fault(self, kind, service, operation):
        with self._lock:
            self._faults[kind][f"{service}:{operation}"] += 1

    def record_error(self, service, operation, code):
        with self._lock:
            self._errors[f"{service}:{operation}:{code}"] += 1

    def snapshot(self):
        with self._lock:
            return {
                "total_calls": self._total,
                "calls": {acct: {svc: dict(ops) for svc, ops in svcs.items()} for acct, svcs in self._calls.items()},
                "principals": {arn: dict(actions) for arn, actions in self._principal_actions.items()},
                "faults": {kind: dict(ops) for kind, ops in self._faults.items()},
                "errors": dict(self._errors),
            }
