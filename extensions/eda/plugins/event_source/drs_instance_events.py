# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""drs_instance_events: an Event-Driven Ansible event source that long-polls the SQS queue of
playbooks/setup_events.yml and hands the rulebook one event per account and region every window, naming the
instances that were launched or got the DR tags in it.

Arguments:
    queue_url         the queue's URL (required; setup_events.yml's output QueueUrl)
    region            the queue's region (default: the AWS configuration's)
    profile           an AWS profile (default: the AWS configuration's credentials, as AWX injects them)
    window_seconds    how long a window gathers an account-region's instances from its first event (default 60)
    throttle_seconds  an instance handed to a deploy is not handed again within this time (default 600)
    wait_seconds      the long poll's wait, up to SQS's 20 seconds (default 20)
    tag_filters       the deploy's tag filters, key to a value or a list of values (default: the deploy's default,
                      {"dr:enabled": "true", "dr:recovery-strategy": "drs"})

Each event the rulebook receives::

    {"drs_instances": {"account_id": "...", "region": "...", "instance_ids": ["i-..."],
                       "untagged_instance_ids": ["i-..."], "messages": 3}}

What an event means for an instance is plugins/plugin_utils/instance_events.py's. A message is deleted from the
queue only once the event of its window is on the rulebook's queue (or when it is dropped, with the reason in the
log): if the rulebook stops first, SQS delivers the message again after its visibility timeout, which is the
window plus VISIBILITY_MARGIN_SECONDS. Receive and delete errors are retried by botocore's standard retry mode
(jittered backoff on throttling); an error that retrying cannot fix (no such queue, access denied) ends the
source, saying what to fix.
"""

import asyncio
import logging
import pathlib
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# ansible-rulebook runs a source plugin as a file, not as a module of its collection: the collections root this
# file is in (<root>/ansible_collections/<namespace>/<name>/extensions/eda/plugins/event_source/) must be on the
# path for the plugin to share the collection's code
COLLECTIONS_ROOT = str(pathlib.Path(__file__).absolute().parents[7])
if COLLECTIONS_ROOT not in sys.path:
    sys.path.append(COLLECTIONS_ROOT)

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.instance_events import Windows  # noqa: E402
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.instance_events import check_arguments  # noqa: E402
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.instance_events import observe  # noqa: E402

LOGGER = logging.getLogger(__name__)
VISIBILITY_MARGIN_SECONDS = 120
SHORT_POLL_PAUSE_SECONDS = 1.0
# SQS receives and deletes at most 10 messages a call
SQS_BATCH = 10
RETRIES = Config(retries={"mode": "standard", "max_attempts": 10})


class QueueReader:
    """The queue's receive and delete calls, run in a thread so that the rulebook's loop goes on meanwhile."""

    def __init__(self, settings):
        session = boto3.Session(profile_name=settings["profile"], region_name=settings["region"])
        self.sqs = session.client("sqs", config=RETRIES)
        self.url = settings["queue_url"]
        self.visibility = settings["window_seconds"] + VISIBILITY_MARGIN_SECONDS

    async def receive(self, wait_seconds):
        answer = await asyncio.to_thread(
            self.sqs.receive_message, QueueUrl=self.url, MaxNumberOfMessages=SQS_BATCH, WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=self.visibility)
        return answer.get("Messages", [])

    async def delete(self, receipts):
        for start in range(0, len(receipts), SQS_BATCH):
            entries = [{"Id": str(index), "ReceiptHandle": receipt}
                       for index, receipt in enumerate(receipts[start:start + SQS_BATCH])]
            answer = await asyncio.to_thread(self.sqs.delete_message_batch, QueueUrl=self.url, Entries=entries)
            for failure in answer.get("Failed", []):
                # SQS delivers the message again: its event then counts as delivered before, or re-opens a window
                LOGGER.warning("drs_instance_events: could not delete a message (%s: %s); it will be received again",
                               failure.get("Code"), failure.get("Message"))


async def main(queue, args):
    """Read the queue until the rulebook stops, putting one event per closed window on ``queue``."""
    settings = check_arguments(args)
    reader = QueueReader(settings)
    windows = Windows(settings["window_seconds"], settings["throttle_seconds"])
    LOGGER.info("drs_instance_events: reading %s, windows of %s s per account-region, throttle %s s per instance",
                settings["queue_url"], settings["window_seconds"], settings["throttle_seconds"])
    while True:
        due, now = windows.next_due(), time.monotonic()
        wait = settings["wait_seconds"] if due is None else max(0, min(settings["wait_seconds"], int(due - now)))
        messages = await _receive(reader, wait)
        if not messages and wait == 0:
            # short polling (wait_seconds 0), or a window about to close: pause instead of asking SQS again at once
            await asyncio.sleep(SHORT_POLL_PAUSE_SECONDS if due is None else min(SHORT_POLL_PAUSE_SECONDS, max(due - now, 0)))
        await reader.delete([message["ReceiptHandle"] for message in messages
                             if not _gathered(windows, message, settings["tag_filters"])])
        for window in windows.due(time.monotonic()):
            event = window.closed()
            window_instances = event["drs_instances"]
            LOGGER.info("drs_instance_events: window of %s %s closed: %d instance(s) to deploy %s, %d untagged %s",
                        window.account_id, window.region, len(window_instances["instance_ids"]),
                        window_instances["instance_ids"], len(window_instances["untagged_instance_ids"]),
                        window_instances["untagged_instance_ids"])
            if window_instances["instance_ids"]:
                await queue.put(event)
            await reader.delete(window.receipts)


def _gathered(windows, message, tag_filters):
    """Whether a window holds the message (delete it once the window is queued); else it is dropped, and why is
    logged."""
    observations, reason = observe(message.get("Body", ""), tag_filters)
    held, reasons = windows.take(observations, message["ReceiptHandle"], time.monotonic()) if observations else (False, [reason])
    for text in reasons:
        LOGGER.info("drs_instance_events: dropped message %s: %s", message.get("MessageId"), text)
    return held


async def _receive(reader, wait):
    try:
        return await reader.receive(wait)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise RuntimeError(f"drs_instance_events: cannot receive from {reader.url}: {code}: {error}. Check queue_url "
                           "(setup_events.yml's output QueueUrl), region, and that the credentials may "
                           "sqs:ReceiveMessage and sqs:DeleteMessage on the queue") from None
    except BotoCoreError as error:
        raise RuntimeError(f"drs_instance_events: cannot reach {reader.url}: {error}") from None
