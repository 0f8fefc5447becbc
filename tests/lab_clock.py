"""The clock the collection waits on during tests: it moves the lab's simulated time forward instead of sleeping.

ansible-playbook runs under the tests with ``DRS_AGENT_DEPLOYER_CLOCK=tests.lab_clock:LabClock`` (see
tests/e2e/conftest.py), so the deploy action and the modules wait on the lab's clock: an install of ten
simulated minutes costs a few requests, not real time. Keep the lab's own time scale low (``lab_clock``
fixtures set it to 1) so that real time hardly moves the simulated clock meanwhile.
"""

import json
import os
import urllib.request


class LabClock:
    """now(): the lab's simulated seconds; sleep(s): advance the lab by s; wait(s, event): the same, unless set."""

    def __init__(self):
        self.url = os.environ["AWS_ENDPOINT_URL"].rstrip("/") + "/_lab/clock"

    def _clock(self, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def now(self):
        return self._clock()["elapsed_seconds"]

    def sleep(self, seconds):
        if seconds > 0:
            self._clock({"advance_seconds": seconds})

    def wait(self, seconds, event):
        if not event.is_set():
            self.sleep(seconds)
        return event.is_set()
