"""SQS ReceiveMessage, which the lab answers itself: a long poll waits outside the lab's lock, so the other clients
go on meanwhile, and it ends when a message arrives (sent by a client, or an EventBridge event the lab publishes
meanwhile) or when its wait has passed in real or in simulated time. What it receives is what moto received."""

import json
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer

from tests.lab.shapes import output_problems

SCENARIO = Path(__file__).with_name("scenarios") / "sqs.yml"
ACCOUNT = "111111111111"
WAIT_SECONDS = 20
SCHEDULED_TAG_AT = 100000  # the scenario's change
TAG_PATTERN = {"source": ["aws.tag"], "detail-type": ["Tag Change on Resource"],
               "detail": {"changed-tag-keys": [{"prefix": "dr:"}]}}
# a long poll's client must outwait the poll, and must not send it again behind the test's back
POLLING = Config(read_timeout=WAIT_SECONDS * 3, retries={"mode": "standard", "total_max_attempts": 1})
# what differs between two receives of the same messages however faithful they are
RECEIVE_VARIES = {"MessageId", "ReceiptHandle"}
ATTRIBUTES_VARY = {"SentTimestamp", "ApproximateFirstReceiveTimestamp", "SequenceNumber"}


@pytest.fixture(scope="module")
def lab(lab_factory):
    # simulated time moves only when a test advances it, so no long poll ends on the simulated clock by itself
    return lab_factory(SCENARIO, time_scale=0.001)


@pytest.fixture(scope="module")
def sqs(lab):
    return lab.client("sqs")


@pytest.fixture
def queue(sqs):
    """A new empty queue's URL."""
    return sqs.create_queue(QueueName=f"queue-{uuid.uuid4().hex[:12]}")["QueueUrl"]


@pytest.fixture(scope="module")
def events_queue(lab, sqs):
    """A queue that a rule on the account's default bus fills with the instances' dr: tag changes."""
    url = sqs.create_queue(QueueName="tag-changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = lab.client("events")
    rule_arn = events.put_rule(Name="dr-tags", EventPattern=json.dumps(TAG_PATTERN))["RuleArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]})})
    events.put_targets(Rule="dr-tags", Targets=[{"Id": "queue", "Arn": arn}])
    return url


@pytest.fixture
def tag_changes(sqs, events_queue):
    """The events queue, emptied of what earlier tests left."""
    _delete_every_message(sqs, events_queue)
    return events_queue


def _delete_every_message(sqs, url):
    # received messages stay hidden for the queue's visibility timeout: the loop ends even if a delete did not
    while "Messages" in (received := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)):
        for message in received["Messages"]:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


class Receive(threading.Thread):
    """A ReceiveMessage in a thread of its own, on its own client, as an event source plugin long-polls."""

    def __init__(self, lab, **params):
        super().__init__(daemon=True)
        self._sqs = lab.client("sqs", config=POLLING)
        self._params = params
        self.answer = None
        self.error = None

    def run(self):
        try:
            self.answer = self._sqs.receive_message(**self._params)
        except Exception as error:  # the test's thread asserts on it
            self.error = error

    def messages(self):
        """The messages it received, once it has ended."""
        self.join(timeout=WAIT_SECONDS * 3)
        assert not self.is_alive() and self.error is None, self.error
        return self.answer.get("Messages", [])


def receiving(lab, **params):
    """A ReceiveMessage under way: returns once the lab has taken the call (counted it in its statistics, which it
    does under its lock, before it first looks at the queue)."""
    taken = _receive_calls(lab) + 1
    receive = Receive(lab, **params)
    receive.start()
    given_up_at = time.monotonic() + WAIT_SECONDS
    while _receive_calls(lab) < taken:
        assert receive.error is None, receive.error
        assert time.monotonic() < given_up_at, "the lab never took the ReceiveMessage call"
        time.sleep(0.01)
    return receive


def _receive_calls(lab):
    return lab.stats()["calls"].get(ACCOUNT, {}).get("sqs", {}).get("ReceiveMessage", 0)


def test_a_long_poll_does_not_stall_the_other_clients(lab, sqs, queue):
    poll = receiving(lab, QueueUrl=queue, WaitTimeSeconds=WAIT_SECONDS)
    other_queue = sqs.create_queue(QueueName=f"other-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    assert lab.client("sts").get_caller_identity()["Account"] == ACCOUNT
    sqs.send_message(QueueUrl=other_queue, MessageBody="for someone else")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=other_queue)["Messages"]] == ["for someone else"]
    # every call above was answered while the poll was still waiting
    assert poll.is_alive()

    sqs.send_message(QueueUrl=queue, MessageBody="done")
    assert [m["Body"] for m in poll.messages()] == ["done"]


def test_a_message_sent_during_a_long_poll_is_its_answer(lab, sqs, queue):
    poll = receiving(lab, QueueUrl=queue, WaitTimeSeconds=WAIT_SECONDS, MessageSystemAttributeNames=["All"])
    sent = sqs.send_message(QueueUrl=queue, MessageBody="wake up")
    [message] = poll.messages()
    assert (message["MessageId"], message["Body"]) == (sent["MessageId"], "wake up")
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    # received: hidden from the next receive for the queue's visibility timeout
    assert "Messages" not in sqs.receive_message(QueueUrl=queue)


def test_a_queue_with_a_receive_wait_long_polls_calls_that_name_no_wait(lab, sqs, queue):
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"ReceiveMessageWaitTimeSeconds": str(WAIT_SECONDS)})
    poll = receiving(lab, QueueUrl=queue)
    assert lab.client("sts").get_caller_identity()["Account"] == ACCOUNT
    assert poll.is_alive()
    sqs.send_message(QueueUrl=queue, MessageBody="late")
    assert [m["Body"] for m in poll.messages()] == ["late"]
    # an explicit WaitTimeSeconds of 0 wins over the queue's
    assert "Messages" not in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)


def test_a_long_poll_ends_empty_once_its_wait_has_passed_on_the_simulated_clock(lab, sqs, queue):
    poll = receiving(lab, QueueUrl=queue, WaitTimeSeconds=WAIT_SECONDS)
    assert lab.client("sts").get_caller_identity()["Account"] == ACCOUNT
    assert poll.is_alive()
    lab.control("clock", {"advance_seconds": WAIT_SECONDS})
    # well before the real seconds pass
    poll.join(timeout=WAIT_SECONDS / 2)
    assert not poll.is_alive()
    assert poll.messages() == []


def test_a_long_poll_ends_empty_after_its_real_wait_and_the_lab_counts_only_its_work(lab, queue):
    wait_seconds = 1
    poll = receiving(lab, QueueUrl=queue, WaitTimeSeconds=wait_seconds)
    assert poll.messages() == []
    _started_at, seconds, _operation = [entry for entry in lab.control("service-times")["service_times"]
                                        if entry[2] == "sqs:ReceiveMessage"][-1]
    # the lab worked on the poll only while it looked at the queue, not while it waited
    assert seconds < wait_seconds / 2


def test_an_event_published_during_a_long_poll_reaches_the_receiver(lab, tag_changes):
    poll = receiving(lab, QueueUrl=tag_changes, WaitTimeSeconds=WAIT_SECONDS)
    lab.control("tags", {"group": "web", "count": 1, "tag": {"dr:owner": "payments"}})
    [message] = poll.messages()
    event = json.loads(message["Body"])
    assert event["detail-type"] == "Tag Change on Resource"
    assert event["detail"]["changed-tag-keys"] == ["dr:owner"]
    assert event["detail"]["tags"]["dr:owner"] == "payments"


def test_a_scheduled_change_falling_due_during_a_long_poll_reaches_the_receiver(lab, tag_changes):
    """The scenario's change publishes its event while nothing but the poll is under way: the poll itself runs
    the lab's due events while it waits."""
    elapsed = lab.control("clock")["elapsed_seconds"]
    assert elapsed < SCHEDULED_TAG_AT - 5
    lab.control("clock", {"advance_seconds": SCHEDULED_TAG_AT - 5 - elapsed})
    poll = receiving(lab, QueueUrl=tag_changes, WaitTimeSeconds=WAIT_SECONDS)
    try:
        # the change falls due 5 simulated seconds on, a tenth of a real second at this scale, and the poll's wait
        # ends 20 simulated seconds on
        lab.control("clock", {"time_scale": 50})
        [message] = poll.messages()
    finally:
        lab.pin_time_scale(0.001)
    event = json.loads(message["Body"])
    assert event["detail"]["changed-tag-keys"] == ["dr:wave"]
    assert event["detail"]["tags"]["dr:wave"] == "9"


def test_receiving_answers_what_moto_answered(lab, sqs):
    """The same messages received from the lab and from moto itself answer the same bytes, but for what differs
    between any two receives (message ids, receipt handles, times); the receipt handle deletes the message."""
    moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto_server.start()
    try:
        host, port = moto_server.get_host_and_port()
        moto_sqs = boto3.client("sqs", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                                aws_access_key_id="moto", aws_secret_access_key="moto")
        for client in (sqs, moto_sqs):
            _send_the_same_messages(client)
        for params in ({"QueueUrl": "compared", "MessageSystemAttributeNames": ["All"], "MessageAttributeNames": ["All"]},
                       {"QueueUrl": "compared", "AttributeNames": ["All"], "MessageAttributeNames": ["trace.*", "Count"]},
                       {"QueueUrl": "compared"},
                       {"QueueUrl": "compared.fifo", "MessageSystemAttributeNames": ["MessageGroupId", "SequenceNumber"]}):
            params = {**params, "MaxNumberOfMessages": 10, "VisibilityTimeout": 0}
            from_lab, lab_body = _received(sqs, params)
            from_moto, moto_body = _received(moto_sqs, params)
            assert output_problems(sqs, "ReceiveMessage", from_lab) == []
            assert len(from_lab["Messages"]) == len(from_moto["Messages"]) > 0
            assert _comparable(lab_body) == _comparable(moto_body)
    finally:
        moto_server.stop()
        moto_api_backend.reset()  # the moto server kept its queues in this process's moto

    url = sqs.get_queue_url(QueueName="compared")["QueueUrl"]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    for message in received:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)


def _send_the_same_messages(client):
    url = client.create_queue(QueueName="compared")["QueueUrl"]
    client.send_message(QueueUrl=url, MessageBody="plain")
    client.send_message(QueueUrl=url, MessageBody='{"détail": "ünïcode ✓"}', MessageAttributes={
        "Count": {"DataType": "Number", "StringValue": "42"},
        "trace.id": {"DataType": "String", "StringValue": "abc"},
        "trace.blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
        "Other": {"DataType": "String.custom", "StringValue": "x"},
    }, MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793"}})
    fifo = client.create_queue(QueueName="compared.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    client.send_message(QueueUrl=fifo, MessageBody="first", MessageGroupId="g", MessageDeduplicationId="1")
    client.send_message(QueueUrl=fifo, MessageBody="second", MessageGroupId="g", MessageDeduplicationId="2")


def _received(client, params):
    """A ReceiveMessage's parsed answer and its body as sent."""
    bodies = []

    def keep_body(http_response, **_kwargs):
        bodies.append(http_response.content)

    client.meta.events.register("after-call.sqs.ReceiveMessage", keep_body)
    try:
        url = client.get_queue_url(QueueName=params["QueueUrl"])["QueueUrl"]
        answer = client.receive_message(**{**params, "QueueUrl": url})
    finally:
        client.meta.events.unregister("after-call.sqs.ReceiveMessage", keep_body)
    return answer, bodies[-1]


def _comparable(body):
    """The answer's members in their order, with what varies between receives blanked."""
    messages = json.loads(body)["Messages"]
    for message in messages:
        message.update({name: "..." for name in RECEIVE_VARIES})
        for name in ATTRIBUTES_VARY & set(message.get("Attributes", {})):
            message["Attributes"][name] = "..."
    return json.dumps(messages)


def test_a_missing_queue_and_values_out_of_range_are_refused_as_sqs_refuses_them(lab, sqs, queue):
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as missing:
        sqs.receive_message(QueueUrl=queue + "-gone", WaitTimeSeconds=WAIT_SECONDS)
    assert missing.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    for params, message in (
            ({"MaxNumberOfMessages": 11}, "Value 11 for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."),
            ({"WaitTimeSeconds": 21}, "Value 21 for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."),
            ({"VisibilityTimeout": -1}, "Value -1 for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided.")):
        with pytest.raises(ClientError) as refused:
            sqs.receive_message(QueueUrl=queue, **params)
        assert refused.value.response["Error"] == {"Code": "InvalidParameterValue", "Message": message,
                                                   "QueryErrorCode": "InvalidParameterValue", "Type": "Sender"}


def test_a_queue_deleted_during_a_long_poll_ends_it_as_a_missing_queue(lab, sqs, queue):
    poll = receiving(lab, QueueUrl=queue, WaitTimeSeconds=WAIT_SECONDS)
    sqs.delete_queue(QueueUrl=queue)
    poll.join(timeout=WAIT_SECONDS * 3)
    assert isinstance(poll.error, ClientError)
    assert poll.error.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
