"""The seed's boto 2 EC2 tutorial, its calls as written, against overcast.

Run by the e2e test `ec2_clients` under boto 2.49 on Python 3.11. The connection comes
from boto's own configuration (BOTO_CONFIG and the AWS_* variables), as the tutorial's
`EC2Connection()` and `boto.connect_ec2()` take it; TUTORIAL_IMAGE is the `<ami-image-id>`.
Prints what the tutorial shows, as one JSON document, for the test to check.
"""

import json
import os

import boto
from boto.ec2.connection import EC2Connection

image = os.environ["TUTORIAL_IMAGE"]

# Creating a Connection
conn = EC2Connection()
conn = boto.connect_ec2()

# Launching Instances
first = conn.run_instances(image)
second = conn.run_instances(image, key_name='myKey', instance_type='c1.xlarge', security_groups=['public-facing'])
ids = [i.id for i in first.instances + second.instances]

# Stopping Instances
stopped = conn.stop_instances(instance_ids=ids, force=True)

# Terminating Instances
terminated = conn.terminate_instances(instance_ids=ids)

# Security Groups
web = conn.create_security_group('apache', 'Our Apache Group')
web_authorized = web.authorize('tcp', 80, 80, '0.0.0.0/0')
app = conn.create_security_group('appserver', 'The application tier')
app_authorized = app.authorize(src_group=web)
ssh_authorized = web.authorize(ip_protocol='tcp', from_port=22, to_port=22, cidr_ip='192.168.1.130/32')
web_rules = [str(rule) for rule in web.rules]
revoked = web.revoke('tcp', 22, 22, cidr_ip='192.168.1.130/32')
web_rules_after = [str(rule) for rule in web.rules]

rs = conn.get_all_security_groups()
listed = dict((sg.name, [str(rule) for rule in sg.rules]) for sg in rs)

print(json.dumps({
    "instances": ids,
    "second_type": second.instances[0].instance_type,
    "stopped": [i.id for i in stopped],
    "terminated": [i.id for i in terminated],
    "groups": [str(sg) for sg in rs],
    "authorized": [web_authorized, app_authorized, ssh_authorized],
    "revoked": revoked,
    "web_rules": web_rules,
    "web_rules_after": web_rules_after,
    "listed": listed,
}))
