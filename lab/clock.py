"""Simulated time: real elapsed time multiplied by a time scale, plus manual advances."""

import threading
import time
from datetime import datetime, timedelta, timezone


class SimulatedClock:
    def __init__(self, time_scale=1.0):
        self._lock = threading.Lock()
        self._origin = datetime.now(timezone.utc)
        self._real_anchor = time.monotonic()
        self._sim_anchor = 0.0
        self._time_scale = float(time_scale)

    @property
    def time_scale(self):
        return self._time_scale

    def elapsed(self):
        """Simulated seconds since the lab started."""
        with self._lock:
            return self._sim_anchor + (time.monotonic() - self._real_anchor) * self._time_scale

    def now(self):
        return self.at(self.elapsed())

    def at(self, elapsed_seconds):
        return self._origin + timedelta(seconds=elapsed_seconds)

    def _rebase(self):
        now_real = time.monotonic()
        self._sim_anchor += (now_real - self._real_anchor) * self._time_scale
        self._real_anchor = now_real

    def advance(self, seconds):
        if seconds < 0:
            raise ValueError("advance_seconds must not be negative: simulated time never runs backwards")
        with self._lock:
            self._rebase()
            self._sim_anchor += seconds

    def set_time_scale(self, time_scale):
        if time_scale <= 0:
            raise ValueError("time_scale must be a positive number of simulated seconds per real second")
        with self._lock:
            self._rebase()
            self._time_scale = float(time_scale)

    def describe(self):
        return {"now": self.now().isoformat(), "elapsed_seconds": round(self.elapsed(), 3), "time_scale": self._time_scale}
