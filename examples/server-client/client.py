#!/usr/bin/env python3
"""Ask `emrfs-rolemap serve` which role a request uses, or for its credentials: Python standard library
only, over the Unix socket or over TCP with the bearer token.

    python3 client.py --socket /run/emrfs-rolemap.sock --path s3://lake/raw/x            # as yourself
    python3 client.py --tcp 127.0.0.1:9944 --token-file token --user alice --group staff \
        --path s3://lake/raw/x --endpoint credentials

Prints the server's JSON answer (secrets redacted unless --show-secrets) and exits 0, or prints the
error's message and help to standard error and exits 1. A proxy would keep one connection open and send
one request per S3 call; `tests/server.rs` runs this script against the server.
"""

import argparse
import http.client
import json
import socket
import sys


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix domain socket: the server learns our uid from the kernel."""

    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="the server's Unix socket")
    where.add_argument("--tcp", metavar="HOST:PORT", help="the server's TCP address (needs --token-file)")
    parser.add_argument("--token-file", help="the file holding the bearer token, for --tcp")
    parser.add_argument("--endpoint", choices=["resolve", "explain", "credentials"], default="resolve")
    parser.add_argument("--user")
    parser.add_argument("--group", action="append", default=[], help="repeat for several groups")
    parser.add_argument("--path", help="the S3 location, s3://bucket/key")
    parser.add_argument("--show-secrets", action="store_true", help="print the secret key and session token")
    args = parser.parse_args()

    headers = {"Content-Type": "application/json"}
    if args.socket:
        connection = UnixHTTPConnection(args.socket)
    else:
        host, _, port = args.tcp.rpartition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10.0)
        if not args.token_file:
            parser.error("--tcp needs --token-file")
        with open(args.token_file, encoding="ascii") as token:
            headers["Authorization"] = "Bearer " + token.read().strip()

    request = {"user": args.user, "groups": args.group or None, "path": args.path}
    body = json.dumps({k: v for k, v in request.items() if v is not None})
    connection.request("POST", "/v1/" + args.endpoint, body, headers)
    response = connection.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        error = answer["error"]
        print(f"error {response.status} {error['code']}: {error['message']}", file=sys.stderr)
        if "help" in error:
            print(f"  help: {error['help']}", file=sys.stderr)
        return 1
    credentials = answer.get("Credentials")
    if credentials and not args.show_secrets:
        for secret in ("SecretAccessKey", "SessionToken"):
            if credentials.get(secret):
                credentials[secret] = "<redacted>"
    print(json.dumps(answer, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
