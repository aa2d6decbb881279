#!/usr/bin/env python3
"""Serves fakepve (a Proxmox VE API simulator) for overcast's tests.

fakepve's own CLI cannot register API tokens or switch faults on while it runs, so the
tests start it through this: a fresh self-signed certificate in --dir, the tokens given as
--token USER@REALM!ID=SECRET, the guests of a JSON file, a port the system picks on
127.0.0.1. Prints, once listening:
    fakepve listening on https://127.0.0.1:PORT cert=PATH
Then reads commands on stdin, one JSON object a line, and answers each on stdout:
    {"call": "flaky_network", "args": {"drop_rate": 0.2, "seed": 7}}  -> control ok null
    {"call": "set_vm", "args": {"vmid": 101, "acpi": false}}          -> control ok null
    {"call": "storage_files", "args": {"storage": "local"}}           -> control ok ["..."]
    {"call": "requests", "args": {"path": "/resize"}}                   -> control ok [[...]]
    {"call": "uploaded"}                                                -> control ok {...}
A call is any public method of fakepve's FakePve (fail, slow_network, flaky_network,
hold_config_lock, ...) or one of those above; a failure answers `control error TEXT`.
"""

import argparse
import base64
import asyncio
import inspect
import json
import sys

from fakepve.certs import make_cert
from fakepve.server import FakePve

# Per-guest switches a guests file (or set_vm) may give, as fakepve's own CLI reads them.
GUEST_SWITCHES = ('shutdown_secs', 'start_secs', 'stop_secs', 'start_error', 'ha_state', 'agent', 'acpi')


def set_vm(pve, vmid, **switches):
    vm = pve.vm(vmid)
    for key, value in switches.items():
        if key not in GUEST_SWITCHES:
            raise ValueError('no switch {0!r}; known: {1}'.format(key, ', '.join(GUEST_SWITCHES)))
        setattr(vm, key, value)


def storage_files(pve, storage):
    """The files (ISOs) and volumes a storage holds now."""
    store = pve.storages[storage]
    return sorted(set(store.get('files', ())) | set(store.get('volumes', {})))


def requests(pve, path):
    """The requests seen whose path contains `path`: [method, path, body], oldest first."""
    return [[method, seen, body.decode(errors='replace') if isinstance(body, bytes) else body]
            for method, seen, body in pve.requests if path in seen]


def uploaded(pve):
    """The last upload's form fields, its file's bytes in base64 as `data`."""
    fields = dict(pve.uploaded or {})
    if 'data' in fields:
        fields['data'] = base64.b64encode(fields['data']).decode()
    return fields


async def control(pve):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        try:
            command = json.loads(line)
            name, args = command['call'], command.get('args', {})
            if name == 'set_vm':
                result = set_vm(pve, **args)
            elif name == 'storage_files':
                result = storage_files(pve, **args)
            elif name == 'requests':
                result = requests(pve, **args)
            elif name == 'uploaded':
                result = uploaded(pve)
            elif name.startswith('_') or not callable(getattr(pve, name, None)):
                raise ValueError('fakepve has no call {0!r}'.format(name))
            else:
                result = getattr(pve, name)(**args)
                if inspect.isawaitable(result):
                    result = await result
            print('control ok ' + json.dumps(result, default=str), flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is the test's to read
            print('control error {0}: {1}'.format(type(e).__name__, e).replace('\n', ' '), flush=True)


async def serve(args):
    pve = FakePve(user=args.user, password=args.password, host='127.0.0.1', port=0)
    pve.time_scale = args.time_scale
    for token in args.token:
        token_id, _, secret = token.partition('=')
        pve.apitokens[token_id] = secret
    with open(args.guests) as guests:
        for guest in json.load(guests)['guests']:
            pve.add_vm(guest['vmid'], guest['name'], node=guest.get('node', 'pve1'),
                       status=guest.get('status', 'stopped'), config=guest.get('config', {}),
                       template=guest.get('template', False), lock=guest.get('lock'))
            set_vm(pve, guest['vmid'], **{k: v for k, v in guest.items() if k in GUEST_SWITCHES})
    certfile, keyfile, _ = make_cert(args.dir, hosts=('127.0.0.1',))
    await pve.start(certfile, keyfile)
    print('fakepve listening on {0} cert={1}'.format(pve.url, certfile), flush=True)
    await control(pve)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dir', required=True, help='where the certificate and key are written')
    parser.add_argument('--guests', required=True, help='JSON file: {"guests": [{"vmid", "name", ...}]}')
    parser.add_argument('--token', action='append', default=[], help='USER@REALM!ID=SECRET')
    parser.add_argument('--user', default='root@pam')
    parser.add_argument('--password', default='secret')
    parser.add_argument('--time-scale', type=float, default=0.0,
                        help='real seconds per PVE second; 0 (the default) ends tasks at once')
    try:
        asyncio.run(serve(parser.parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
