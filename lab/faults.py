"""Injected faults: throttling rates per operation, added latency, whole services unavailable."""

import random
import threading


class FaultPlan:
    """What goes wrong, and how often. ``throttle`` and ``latency_ms`` map a service to a map of
    operation (or ``*`` for every operation) to a rate in [0, 1] or milliseconds."""

    def __init__(self, seed=0):
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.throttle = {}
        self.latency_ms = {}
        self.unavailable = set()

    def configure(self, spec):
        with self._lock:
            if spec.get("clear"):
                self.throttle, self.latency_ms, self.unavailable = {}, {}, set()
            if "throttle" in spec:
                self.throttle = _rates(spec["throttle"], "throttle", upper=1.0)
            if "latency_ms" in spec:
                self.latency_ms = _rates(spec["latency_ms"], "latency_ms", upper=60000)
            if "unavailable" in spec:
                services = spec["unavailable"]
                if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
                    raise ValueError("unavailable must be a list of service names, for example [dynamodb]")
                self.unavailable = set(services)

    def describe(self):
        with self._lock:
            return {"throttle": self.throttle, "latency_ms": self.latency_ms, "unavailable": sorted(self.unavailable)}

    def is_unavailable(self, service):
        return service in self.unavailable

    def should_throttle(self, service, operation):
        rate = _lookup(self.throttle, service, operation)
        if not rate:
            return False
        with self._lock:
            return self._random.random() < rate

    def latency_seconds(self, service, operation):
        return _lookup(self.latency_ms, service, operation) / 1000.0


def _lookup(table, service, operation):
    by_operation = table.get(service) or {}
    return by_operation.get(operation, by_operation.get("*", 0))


def _rates(spec, field, upper):
    if not isinstance(spec, dict):
        raise ValueError(f"{field} must map a service name to {{operation or '*': value}}")
    result = {}
    for service, operations in spec.items():
        if isinstance(operations, (int, float)):
            operations = {"*": operations}
        if not isinstance(operations, dict):
            raise ValueError(f"{field}.{service} must map operation names (or '*') to numbers")
        for operation, value in operations.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= upper:
                raise ValueError(f"{field}.{service}.{operation} must be a number from 0 to {upper}, got {value!r}")
        result[service] = dict(operations)
    return result
