#!/usr/bin/env python3
"""Serves fakepve (a Proxmox VE API simulator) for overcast's tests.

fakepve's own CLI cannot register API tokens, so the tests start it through this: a fresh
self-signed certificate in --dir, the tokens given as --token USER@REALM!ID=SECRET, the
guests of a JSON file, a port the system picks on 127.0.0.1. Prints, once listening:
    fakepve listening on https://127.0.0.1:PORT cert=PATH
"""

import argparse
import asyncio
import json

from fakepve.certs import make_cert
from fakepve.server import FakePve


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
    certfile, keyfile, _ = make_cert(args.dir, hosts=('127.0.0.1',))
    await pve.start(certfile, keyfile)
    print('fakepve listening on {0} cert={1}'.format(pve.url, certfile), flush=True)
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dir', required=True, help='where the certificate and key are written')
    parser.add_argument('--guests', required=True, help='JSON file: {"guests": [{"vmid", "name", ...}]}')
    parser.add_argument('--token', action='append', default=[], help='USER@REALM!ID=SECRET')
    parser.add_argument('--user', default='root@pam')
    parser.add_argument('--password', default='secret')
    parser.add_argument('--time-scale', type=float, default=0.0)
    try:
        asyncio.run(serve(parser.parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
