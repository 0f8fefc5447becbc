"""Call statistics: what every account, principal and service was asked, and what faults fired."""

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

    def record_call(self, account_id, principal_arn, service, operation):
        with self._lock:
            self._calls[account_id][service][operation] += 1
            if principal_arn:
                self._principal_actions[principal_arn][f"{service}:{operation}"] += 1
            self._total += 1

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
