# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A rollout's record in the history table: written when the run starts, after each wave, while a long wave
runs (to renew its lease), and at its end; spooled whenever DynamoDB cannot be written.

A write takes a copy of the run as it stands; its items are built from that copy and written by one thread of
their own, so that the next wave waits neither for building them nor for DynamoDB. Each write holds the whole
run, so a write still waiting for that thread when a newer one comes is replaced by it: the last write waits
for at most the one under way, then writes the run's end.
"""

import concurrent.futures
import datetime
import threading

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # the action reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import metrics
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes

TTL_DAYS = 90


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class RunRecord:
    """The history items of one run. ``store`` None records nothing (no history table)."""

    def __init__(self, store, names, deployment_id, run_id, plan, accounts, warn, cloudwatch=None, namespace=None):
        self.store = store
        self.names = names
        self.deployment_id = deployment_id
        self.run_id = run_id
        self.plan = plan
        self.accounts = accounts
        self.warn = warn
        self.cloudwatch = cloudwatch
        self.namespace = namespace
        self.started_at = utcnow()
        self.revision = 0
        self.items = []
        self.spooled = []
        self.written_at = None
        self.extension = None
        self.lost = None
        self.writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="drs-record")
        self.writes = []
        self._next = None  # (the run, its revision, final) of the write waiting for the writer thread
        self._next_lock = threading.Lock()

    def record(self, final=False, stopped=False, stop_reason=None, stopped_after_wave=None):
        """The history input of the run as it stands: every instance (settled or not yet), the waves so far,
        what could not be reached, the installs left running."""
        instances = [instance.record() for instance in self.plan.every_instance()]
        return {
            "deployment_id": self.deployment_id,
            "run_id": self.run_id,
            "pattern": self.plan.pattern,
            "started_at": self.started_at,
            "finished_at": utcnow() if final else None,
            "final": final,
            "stopped": stopped,
            "stop_reason": stop_reason,
            "stopped_after_wave": stopped_after_wave,
            "accounts": self.accounts,
            "instances": instances,
            "waves": [{"wave": wave.number, "started_at": wave.started_at, "finished_at": wave.finished_at}
                      for wave in self.plan.waves if wave.started_at is not None],
            "unreachable": self.plan.unreachable,
            "extension": self.extension,
            "in_flight": [entry for entry in instances if entry["status"] == outcomes.IN_FLIGHT],
        }

    def write(self, now_clock, **final):
        """Write the run's items as they stand (``final``: see ``record``), in the background; the last write
        (``final=True``) waits for every write, then sends the metrics. ``items`` are the last write's."""
        self.written_at = now_clock
        run = self.record(**final)
        if self.store is None:
            self.items = history.build_items(run, self.names, utcnow(), TTL_DAYS)
            return
        self.revision += 1
        with self._next_lock:
            waiting = self._next is not None
            self._next = (run, self.revision, bool(final.get("final")))
        if not waiting:
            self.writes.append(self.writer.submit(self._write_next))
        if final.get("final"):
            for written in self.writes:
                written.result()  # a write that broke says so here
            self.writer.shutdown()

    def _write_next(self):
        with self._next_lock:
            run, revision, final = self._next
            self._next = None
        items = history.build_items(run, self.names, utcnow(), TTL_DAYS)
        wave_items = history.build_wave_items(items)
        for item in items + wave_items:
            item["revision"] = revision
        self.items = items
        self._write(items, wave_items, final)

    def _write(self, items, wave_items, final):
        try:
            result = self.store.write(items + wave_items)
        except OSError as error:
            self.lost = f"neither written to {self.store.table_name} nor kept in {self.store.spool_dir}: {error}"
            self.warn(f"The run's record was {self.lost}")
            return
        if result["spooled"]:
            self.spooled = result["spooled"]
            self.warn(f"The run's record could not be written to the history table {self.store.table_name} "
                      f"({result['error']}): it is kept in {self.store.spool_dir} and the next write to the table "
                      "writes it.")
        elif final:
            self.spooled = []
        if final and self.namespace and self.cloudwatch is not None:
            try:
                metrics.put(self.cloudwatch, self.namespace, metrics.deployment_metrics(items))
            except (BotoCoreError, ClientError) as error:
                self.warn(f"The deployment's CloudWatch metrics could not be sent: {history.error_text(error)}")

    def renew_if_due(self, now_clock):
        """Rewrite the items (renewing the lease) when the last write is LEASE_RENEWAL old on the clock."""
        if self.written_at is not None and now_clock - self.written_at >= history.LEASE_RENEWAL:
            self.write(now_clock)
