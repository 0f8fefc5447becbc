"""SQS ReceiveMessage on moto's queues, received as moto receives but never waiting.

moto's ReceiveMessage long-polls in a loop that sleeps in real time, and the lab answers every call under its
world lock, so one long poll stalled the whole lab. The lab receives with no wait under the lock, and waits between
attempts outside it (``lab.waiting``); moto's queues announce every message they take, to wake the waiting calls.
"""

from moto.sqs.constants import DEFAULT_RECEIVED_MESSAGES, MAXIMUM_VISIBILITY_TIMEOUT
from moto.sqs.models import Queue, sqs_backends

from lab.errors import sqs_invalid_parameter_value, sqs_queue_does_not_exist
from lab.waiting import CHANGES

MAXIMUM_MESSAGES = 10
MAXIMUM_WAIT_SECONDS = 20
# the message system attributes moto keeps, in the order it answers them; "All" asks for every one
SYSTEM_ATTRIBUTES = ("SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp",
                     "MessageDeduplicationId", "MessageGroupId", "AWSTraceHeader", "SequenceNumber")


class Receiver:
    """One ReceiveMessage call on a queue of the caller's account and region, its settings checked as SQS checks
    them; a setting the call leaves out is the queue's."""

    def __init__(self, account_id, region, params):
        self._backend = sqs_backends[account_id][region]
        self._queue_name = queue_name(params["QueueUrl"])
        queue = self._queue()
        self.count = _in_range(params, "MaxNumberOfMessages", DEFAULT_RECEIVED_MESSAGES, 1, MAXIMUM_MESSAGES,
                               f"Must be between 1 and {MAXIMUM_MESSAGES}")
        self.wait_seconds = _in_range(params, "WaitTimeSeconds", int(queue.receive_message_wait_time_seconds), 0,
                                      MAXIMUM_WAIT_SECONDS, f"Must be >= 0 and <= {MAXIMUM_WAIT_SECONDS}")
        self.visibility_timeout = _in_range(params, "VisibilityTimeout", queue.visibility_timeout, 0,
                                            MAXIMUM_VISIBILITY_TIMEOUT, f"Must be >= 0 and <= {MAXIMUM_VISIBILITY_TIMEOUT}")
        # AttributeNames is the older name of MessageSystemAttributeNames; SQS takes either
        requested = set(params.get("AttributeNames", [])) | set(params.get("MessageSystemAttributeNames", []))
        self.system_attribute_names = [name for name in SYSTEM_ATTRIBUTES if "All" in requested or name in requested]
        self.message_attribute_names = params.get("MessageAttributeNames", [])

    def receive(self):
        """The messages visible now, at most ``count``, as moto receives them: hidden for the visibility timeout,
        their receive count raised, a new receipt handle each, only the requested message attributes. A queue
        deleted since the call began is refused as a queue that never was."""
        self._queue()
        return self._backend.receive_message(self._queue_name, self.count, 0, self.visibility_timeout,
                                             self.message_attribute_names)

    def _queue(self):
        queue = self._backend.queues.get(self._queue_name)
        if queue is None:
            raise sqs_queue_does_not_exist()
        return queue


def queue_name(queue_url):
    """The queue a QueueUrl names: its last path segment, or the parameter itself when it is a bare name, which SQS
    also takes. The URL's account is not read: as in moto, the queue is the caller's account's."""
    if queue_url.startswith(("http://", "https://")):
        return queue_url.split("/")[-1]
    return queue_url


def system_attributes(message, names):
    """The message system attributes ``names`` of a received message that it has, as SQS writes them: strings."""
    values = {
        "SenderId": message.sender_id,
        "SentTimestamp": str(message.sent_timestamp),
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
        "MessageDeduplicationId": message.deduplication_id,
        "MessageGroupId": message.group_id,
        "AWSTraceHeader": (message.system_attributes.get("AWSTraceHeader") or {}).get("StringValue"),
        "SequenceNumber": message.sequence_number,
    }
    return {name: values[name] for name in names if values[name] is not None}


def _in_range(params, name, default, low, high, reason):
    value = params.get(name)
    if value is None:
        return default
    if not low <= value <= high:
        raise sqs_invalid_parameter_value(name, value, reason)
    return value


def _announcing(add_message):
    def add_message_and_announce(queue, message):
        add_message(queue, message)
        CHANGES.announce()

    return add_message_and_announce


# every way a message reaches a queue (SendMessage, SendMessageBatch, EventBridge, a dead-letter move) goes through
# Queue.add_message, so a long poll waiting on any queue hears of it at once
Queue.add_message = _announcing(Queue.add_message)
