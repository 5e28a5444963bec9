#!/usr/bin/env python3
"""The `ngc` command of the tests in Python, over the double's Unix socket (JSON): for a bash
built without /dev/tcp, put it first on PATH as `ngc` instead of bin/ngc."""

import json
import os
import socket
import sys

with socket.socket(socket.AF_UNIX) as sock:
    sock.connect(os.environ["NGC_DOUBLE_SOCKET"])
    sock.sendall(json.dumps(sys.argv[1:]).encode() + b"\n")
    sock.shutdown(socket.SHUT_WR)
    data = b"".join(iter(lambda: sock.recv(65536), b""))
reply = json.loads(data)
sys.stdout.write(reply["out"])
sys.stderr.write(reply["err"])
sys.exit(reply["code"])
