"""A local SMTP sink for ChargeFlow: accepts mail and stores it in a Maildir, sends nothing on.

    python scripts/smtp_sink.py --port 1025 --maildir .data/dev/mail [--host 127.0.0.1]

Run it with the venv that scripts/services.sh installs (aiosmtpd is in localstack/requirements.lock):
services.sh starts one on 127.0.0.1:$SMTP_PORT (default 1025) with the Maildir $DATA_DIR/mail, and
tests may start private ones with `"$CHARGEFLOW_VENV/bin/python" scripts/smtp_sink.py --port P
--maildir D`. It is ready as soon as the port accepts connections.

- Every accepted message is one file in MAILDIR/new (the Maildir layout: written in tmp/, then
  renamed into new/, so a reader never sees half a file): the bytes exactly as received after
  DATA (CRLF line endings, dot-unstuffed), preceded by one added header line
  `X-Sink-Rcpt-To: <envelope recipients, comma separated>` (Bcc recipients appear only there).
  Files are not fsynced: a killed sink keeps what it stored (the kernel has it), only a machine
  crash could lose the last ones, and this is a test stand-in. (Python's mailbox.Maildir fsyncs
  every message, which blocked this single-threaded server for 3-30 ms per e-mail and made it
  the e-mail worker's bottleneck under load.)
- Recipient switches, to test failure paths (by the local part, case-insensitive):
    bounce*@...    550 5.1.1 <address>: mailbox unavailable, at RCPT, every time
    greylist*@...  451 4.7.1 <address>: try again later the first time this process sees that
                   exact address, accepted afterwards
    hold*@...      stored at once, but the 250 answer to DATA waits until a file named
                   `release` exists in MAILDIR (at most 60 s): a test can act between the
                   server's having the message and the client's hearing so
  (quoting the recipient as real servers do, so tests see that no address reaches the logs)
  Everything else is accepted. A message with some refused recipients is stored for the others.
- Logs one line per stored message to stdout (Message-ID, recipient count, size), never the body.
- Listens on a loopback address only; --host 0.0.0.0 (or any other) needs --allow-any-host, which
  is meant for the docker-compose container only. --port 0 picks a free port (printed at start).
- Exits with status 0 on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import itertools
import ipaddress
import os
import signal
import socket
import sys
import time
import weakref
from email.parser import BytesHeaderParser

from aiosmtpd.smtp import SMTP

HOSTNAME = "chargeflow-smtp-sink"  # what the sink calls itself (avoids a DNS lookup of the fqdn)


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_part(address):
    local = address.rpartition("@")[0] if "@" in address else address
    return local.strip('"').lower()


class Maildir:
    """Writes messages into a Maildir folder (created with cur/, new/ and tmp/ if missing)."""

    def __init__(self, path):
        self.path = path
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub), mode=0o700, exist_ok=True)
        host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self.suffix = f"P{os.getpid()}.{host}"
        self.counter = itertools.count()

    def add(self, data):
        """Stores `data` as one new message (unique name, tmp/ then new/); its file name."""
        now = time.time()
        name = f"{int(now)}.M{int(now % 1 * 1e6)}Q{next(self.counter)}{self.suffix}"
        tmp = os.path.join(self.path, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.path, "new", name))
        return name


def message_id_of(content):
    """The Message-ID header of a message, reading its header block only (not the body)."""
    end = content.find(b"\r\n\r\n")
    if end < 0:
        end = content.find(b"\n\n")
    head = content if end < 0 else content[: end + 2]
    headers = BytesHeaderParser().parsebytes(head)
    return " ".join(str(headers.get("Message-ID", "-")).split()) or "-"


HOLD_LIMIT_S = 60  # the longest a held answer waits for its release


class SinkHandler:
    def __init__(self, maildir, release_file):
        self.maildir = maildir
        self.release_file = release_file
        self.greylist_seen = set()

    async def wait_for_release(self):
        waited = 0.0
        while not os.path.exists(self.release_file) and waited < HOLD_LIMIT_S:
            await asyncio.sleep(0.01)
            waited += 0.01

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = local_part(address)
        if local.startswith("bounce"):
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if local.startswith("greylist") and address not in self.greylist_seen:
            self.greylist_seen.add(address)
            return f"451 4.7.1 <{address}>: try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content
        eol = b"\r\n" if b"\r\n" in content else b"\n"
        rcpt = ", ".join(envelope.rcpt_tos).encode("utf-8", "surrogateescape")
        stored = b"X-Sink-Rcpt-To: " + rcpt + eol + content
        try:
            key = self.maildir.add(stored)
        except OSError as err:
            print(f"smtp-sink: cannot store a message: {err}", file=sys.stderr, flush=True)
            return "451 4.3.0 cannot store the message"
        message_id = message_id_of(content)
        print(
            f"smtp-sink: stored message-id={message_id} rcpt={len(envelope.rcpt_tos)} "
            f"size={len(content)} file=new/{key}",
            flush=True,
        )
        if any(local_part(a).startswith("hold") for a in envelope.rcpt_tos):
            await self.wait_for_release()
        return "250 2.0.0 OK: queued"


async def serve(args):
    loop = asyncio.get_running_loop()
    handler = SinkHandler(Maildir(args.maildir), os.path.join(args.maildir, "release"))
    sessions = weakref.WeakSet()  # open SMTP sessions, closed at shutdown

    def factory():
        protocol = SMTP(
            handler,
            hostname=HOSTNAME,
            ident="ChargeFlow SMTP sink",
            enable_SMTPUTF8=True,
            loop=loop,
        )
        sessions.add(protocol)
        return protocol

    server = await loop.create_server(factory, host=args.host, port=args.port)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    addresses = ", ".join(
        f"[{s.getsockname()[0]}]:{s.getsockname()[1]}" if ":" in s.getsockname()[0]
        else f"{s.getsockname()[0]}:{s.getsockname()[1]}"
        for s in server.sockets
    )
    print(f"smtp-sink: listening on {addresses}, maildir {os.path.abspath(args.maildir)}", flush=True)
    await stop.wait()
    server.close()
    for protocol in list(sessions):
        if protocol.transport is not None:
            protocol.transport.close()
    await server.wait_closed()
    await asyncio.sleep(0)  # let the closed sessions run their connection_lost
    print("smtp-sink: stopped", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback only)")
    parser.add_argument("--port", type=int, default=1025, help="port to listen on (0: any free one)")
    parser.add_argument("--maildir", required=True, help="Maildir folder for the received mail")
    parser.add_argument(
        "--allow-any-host",
        action="store_true",
        help="allow a non-loopback --host such as 0.0.0.0 (inside a container only)",
    )
    args = parser.parse_args()
    if not is_loopback(args.host) and not args.allow_any_host:
        parser.error(f"--host {args.host} is not a loopback address (add --allow-any-host to allow it)")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is out of range")
    try:
        asyncio.run(serve(args))
    except OSError as err:
        print(f"smtp-sink: error: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
