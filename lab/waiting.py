"""Calls that wait for something to happen, such as an SQS long poll. The lab answers one call at a time under
its world lock; a waiting call must not hold it while it waits, or every other client would wait with it. A route
that has nothing to answer yet answers a ``Pending``: the server waits outside the lock and tries again under it."""

import threading
import time

# the longest a waiting call sleeps between attempts: what nobody announces (a delayed message becoming visible,
# a visibility timeout running out, a scheduled change falling due, the clock jumping ahead) is seen this late
RETRY_INTERVAL_SECONDS = 0.1


class Changes:
    """A count of the changes a waiting call may be waiting for (a message sent to a queue), which wakes the
    waiting calls each time it goes up."""

    def __init__(self):
        self._condition = threading.Condition()
        self._count = 0

    def count(self):
        with self._condition:
            return self._count

    def announce(self):
        with self._condition:
            self._count += 1
            self._condition.notify_all()

    def wait_beyond(self, count, timeout):
        """Wait until the count is no longer ``count``, or ``timeout`` seconds at most."""
        with self._condition:
            self._condition.wait_for(lambda: self._count != count, timeout=timeout)


CHANGES = Changes()


class Deadline:
    """The end of a wait of ``seconds``: that many real seconds from now, or that many simulated seconds on the
    lab's clock, whichever passes first (a lab running faster than real time, or a clock advanced through the
    control API, ends a long poll without making the client wait the real seconds)."""

    def __init__(self, clock, seconds):
        self._clock = clock
        self._real_end = time.monotonic() + seconds
        self._simulated_end = clock.elapsed() + seconds

    def passed(self):
        return time.monotonic() >= self._real_end or self._clock.elapsed() >= self._simulated_end

    def real_seconds_left(self):
        simulated_left = (self._simulated_end - self._clock.elapsed()) / self._clock.time_scale
        return max(0.0, min(self._real_end - time.monotonic(), simulated_left))


class Pending:
    """What a route answers while there is nothing to answer: ``attempt()`` answers, or None for nothing yet, and
    ``expired()`` answers once the deadline has passed. The server calls ``wait()`` outside the world lock, then
    ``retry()`` under it."""

    def __init__(self, attempt, deadline, expired):
        self._attempt = attempt
        self._deadline = deadline
        self.expired = expired
        self._changes_seen = None

    def retry(self):
        """The attempt's answer, the expired answer once the deadline has passed, or this same Pending."""
        # counted before the attempt: a change after it, however soon, ends the next wait at once
        self._changes_seen = CHANGES.count()
        answer = self._attempt()
        if answer is not None:
            return answer
        return self.expired() if self._deadline.passed() else self

    def wait(self):
        """Until a change is announced after the last attempt, the retry interval passes, or the deadline does."""
        CHANGES.wait_beyond(self._changes_seen, min(RETRY_INTERVAL_SECONDS, self._deadline.real_seconds_left()))
