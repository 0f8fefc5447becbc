"""SQS on the wire: ReceiveMessage, whose long poll waits outside the world lock (see lab/waiting.py)."""

from lab.models.sqs import Receiver, system_attributes
from lab.waiting import Deadline, Pending


def receive_message(world, call):
    receiver = Receiver(call.account_id, call.region, call.params)

    def received():
        messages = receiver.receive()
        return {"Messages": [_message(message, receiver.system_attribute_names) for message in messages]} if messages else None

    # SQS answers an empty receive with no Messages member at all
    return Pending(received, Deadline(world.clock, receiver.wait_seconds), expired=dict).retry()


def _message(message, system_attribute_names):
    answer = {"MessageId": message.id, "ReceiptHandle": message.receipt_handle, "MD5OfBody": message.body_md5,
              "Body": message.body}
    if message.message_attributes:
        answer["MessageAttributes"] = message.message_attributes
        answer["MD5OfMessageAttributes"] = message.attribute_md5
    if system_attribute_names:
        answer["Attributes"] = system_attributes(message, system_attribute_names)
    return answer
