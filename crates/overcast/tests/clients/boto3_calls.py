"""boto3 against overcast's EC2 endpoint, as a script would use it: a launch with a client
token (sent by boto3 itself), a paginator over DescribeInstances, a dry run, a waiter.

Run by the e2e test `ec2_clients`; the endpoint, keys and region come from the AWS_*
variables, TEST_IMAGE and TEST_TYPE from the test. Prints one JSON document.
"""

import json
import os
import re
import urllib.error
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

ec2 = boto3.client("ec2")
image, instance_type = os.environ["TEST_IMAGE"], os.environ["TEST_TYPE"]

run = ec2.run_instances(ImageId=image, InstanceType=instance_type, MinCount=3, MaxCount=3,
                        TagSpecifications=[{"ResourceType": "instance",
                                            "Tags": [{"Key": "batch", "Value": "boto3"}]}])
ids = [i["InstanceId"] for i in run["Instances"]]
ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1})

pages = ec2.get_paginator("describe_instances").paginate(
    Filters=[{"Name": "tag:batch", "Values": ["boto3"]}], PaginationConfig={"PageSize": 5})
listed = [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]

try:
    ec2.terminate_instances(InstanceIds=ids, DryRun=True)
    dry_run = "acted"
except ClientError as e:
    dry_run = e.response["Error"]["Code"]

try:
    ec2.describe_instances(Filters=[{"Name": "subnet-id", "Values": ["subnet-1"]}])
    unknown_filter = "ignored"
except ClientError as e:
    unknown_filter = e.response["Error"]["Code"]

ec2.terminate_instances(InstanceIds=ids)
ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 1})


def raw(body, sign):
    """A request botocore's SigV4 signer signs (or nobody does): its status and EC2 code."""
    request = AWSRequest(method="POST", url=os.environ["AWS_ENDPOINT_URL"], data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    if sign:
        SigV4Auth(boto3.Session().get_credentials(), "ec2", "local").add_auth(request)
    prepared = request.prepare()
    body = prepared.body if isinstance(prepared.body, bytes) else prepared.body.encode()
    sent = urllib.request.Request(prepared.url, data=body,
                                  headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(sent) as answer:
            return [answer.status, ""]
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        code = re.search("<Code>([^<]*)</Code>", text)
        message = re.search("<Message>([^<]*)</Message>", text)
        return [e.code, code.group(1) if code else text, message.group(1) if message else ""]


not_served = raw("Action=CreateVpc&CidrBlock=10.0.0.0%2F16&Version=2016-11-15", True)
unsigned = raw("Action=DescribeInstances&Version=2016-11-15", False)
version_2 = raw("Action=DescribeInstances&SignatureVersion=2&AWSAccessKeyId=AKID&Version=2016-11-15", False)

print(json.dumps({"ids": ids, "listed": listed, "dry_run": dry_run,
                  "unknown_filter": unknown_filter, "not_served": not_served,
                  "unsigned": unsigned, "version_2": version_2}))
