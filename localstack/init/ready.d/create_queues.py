"""Create ChargeFlow's SQS queues (FIFO, each with a FIFO dead-letter queue) from queues.json.

Runs two ways:
  * by scripts/services.sh with the LocalStack venv's python (host mode, no Docker);
  * as a LocalStack "ready" hook inside the localstack container (docker-compose.yml mounts
    this folder at /etc/localstack/init/ready.d). LocalStack runs .py hooks with
    ``exec(source, {})`` in its own interpreter: there is no ``__file__``, ``__name__`` or
    useful ``sys.argv`` then, so everything here runs at top level, reads only the
    environment, and raises instead of calling ``sys.exit``.

Environment:
  CHARGEFLOW_QUEUES_FILE  path of queues.json (default: ../../queues.json next to this file)
  SQS_QUEUE_PREFIX        queue name prefix (default "chargeflow-")
  AWS_ENDPOINT_URL        SQS endpoint (default http://localhost:4566)
  AWS_DEFAULT_REGION      region (default us-east-1)

Idempotent: existing queues get their attributes set again instead of being recreated.
For each entry ``name`` it makes ``<prefix><name>-dlq.fifo`` first, then ``<prefix><name>.fifo``
with a redrive policy to it, then lets the DLQ accept redrives from that queue only.
"""

import json
import os

import boto3
import botocore.exceptions

DLQ_RETENTION_S = 14 * 24 * 3600  # the SQS maximum, so parked messages wait for an operator


def queues_file():
    """Where queues.json is: $CHARGEFLOW_QUEUES_FILE, else relative to this script."""
    explicit = os.environ.get("CHARGEFLOW_QUEUES_FILE")
    if explicit:
        return explicit
    here = globals().get("__file__")
    if not here:
        raise RuntimeError("create_queues: set CHARGEFLOW_QUEUES_FILE (no __file__ in this context)")
    return os.path.join(os.path.dirname(os.path.abspath(here)), "..", "..", "queues.json")


def sqs_client():
    return boto3.client(
        "sqs",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or "http://localhost:4566",
        region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def existing_queue_url(sqs, name):
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
            return None
        raise


def ensure_queue(sqs, name, attributes):
    """Create the FIFO queue, or set its attributes if it exists. Returns (url, arn)."""
    url = existing_queue_url(sqs, name)
    if url is None:
        url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", **attributes})["QueueUrl"]
        print(f"create_queues: created {name}")
    else:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        print(f"create_queues: exists  {name} (attributes set)")
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def ensure_pair(sqs, prefix, spec):
    """DLQ first (real SQS rejects a redrive policy to a missing DLQ), then the queue."""
    name = spec["name"]
    dlq_url, dlq_arn = ensure_queue(
        sqs,
        f"{prefix}{name}-dlq.fifo",
        {"ContentBasedDeduplication": "false", "MessageRetentionPeriod": str(DLQ_RETENTION_S)},
    )
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": int(spec["max_receive_count"])}
    _, queue_arn = ensure_queue(
        sqs,
        f"{prefix}{name}.fifo",
        {
            "ContentBasedDeduplication": "false",
            "VisibilityTimeout": str(int(spec["visibility_timeout_s"])),
            "RedrivePolicy": json.dumps(redrive),
        },
    )
    allow = {"redrivePermission": "byQueue", "sourceQueueArns": [queue_arn]}
    sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"RedriveAllowPolicy": json.dumps(allow)})


def create_all():
    path = queues_file()
    with open(path, encoding="utf-8") as fh:
        specs = json.load(fh)
    prefix = os.environ.get("SQS_QUEUE_PREFIX", "chargeflow-")
    sqs = sqs_client()
    for spec in specs:
        ensure_pair(sqs, prefix, spec)
    print(f"create_queues: {len(specs)} queue pairs ready (prefix {prefix!r}, from {os.path.normpath(path)})")


create_all()
