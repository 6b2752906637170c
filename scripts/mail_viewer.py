"""A web page listing the e-mails the local SMTP sink stored, for local work.

    python scripts/mail_viewer.py --host 127.0.0.1 --port 1080 --maildir DIR

Reads the sink's Maildir (scripts/smtp_sink.py writes one file per accepted mail in its new/),
the same files the tests count mails with, so the page shows exactly what the tests see:

  GET /                       the mails, newest first (date, recipient, subject, attachments)
  GET /messages/<key>         one mail: its headers, its HTML body in a sandboxed frame (no
                              scripts, no requests of its own), its text body, its attachments
  GET /messages/<key>/parts/<n>   one MIME part as sent (an invoice PDF, say)
  GET /api/messages           the list as JSON, for scripts

Written with the standard library only (http.server, mailbox, email): a mail catcher with a web
UI from npm or PyPI would be a second SMTP server beside the sink, whose fault switches the tests
rely on. It listens on loopback only (unless --allow-any-host, for a container) and only reads:
it never changes the Maildir.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KEY = re.compile(r"^[A-Za-z0-9._,:=-]+$")
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #1d1d1f; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f5f5f7; }
a { color: #0b57d0; text-decoration: none; }
iframe { width: 100%; height: 32rem; border: 1px solid #ddd; }
pre { white-space: pre-wrap; background: #f5f5f7; padding: 1rem; }
.muted { color: #6e6e73; }
"""


def read_mails(maildir: Path) -> list[tuple[str, EmailMessage]]:
    """Every mail in the Maildir's new/ and cur/, newest first, with its file name as its key."""
    mails = []
    for folder in ("new", "cur"):
        directory = maildir / folder
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if not path.is_file() or not KEY.match(path.name):
                continue
            with path.open("rb") as f:
                message = BytesParser(policy=policy.default).parse(f)
            mails.append((path.name, message))
    mails.sort(key=lambda m: (sent_at(m[1]), m[0]), reverse=True)
    return mails


def sent_at(message: EmailMessage) -> float:
    try:
        return parsedate_to_datetime(message["Date"]).timestamp()
    except (TypeError, ValueError):
        return 0.0


def attachments(message: EmailMessage) -> list[tuple[int, str]]:
    """(part index, file name) of every attachment."""
    return [
        (n, part.get_filename() or f"part-{n}")
        for n, part in enumerate(message.walk())
        if part.get_content_disposition() == "attachment"
    ]


def summary(key: str, message: EmailMessage) -> dict:
    return {
        "id": key,
        "date": message["Date"],
        "from": message["From"],
        "to": message["To"],
        "subject": message["Subject"],
        "message_id": message["Message-ID"],
        "attachments": [name for _, name in attachments(message)],
    }


def list_page(mails: list[tuple[str, EmailMessage]]) -> str:
    rows = "".join(
        "<tr><td class=muted>{date}</td><td>{to}</td><td><a href='/messages/{key}'>{subject}</a></td>"
        "<td>{files}</td></tr>".format(
            date=html.escape(str(m["Date"] or "")),
            to=html.escape(str(m["To"] or "")),
            key=html.escape(key),
            subject=html.escape(str(m["Subject"] or "(no subject)")),
            files=html.escape(", ".join(name for _, name in attachments(m))),
        )
        for key, m in mails
    )
    return page(
        "E-mails sent",
        f"<h1>E-mails sent ({len(mails)})</h1>"
        "<p class=muted>Every mail the local SMTP sink accepted; nothing was delivered. Reload for new ones.</p>"
        "<table><tr><th>Date</th><th>To</th><th>Subject</th><th>Attachments</th></tr>"
        f"{rows}</table>",
    )


def message_page(key: str, message: EmailMessage) -> str:
    headers = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(message[name] or ''))}</td></tr>"
        for name in ("Date", "From", "To", "Subject", "Message-ID")
    )
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    body = ""
    if html_part is not None:
        # srcdoc with an empty sandbox: no scripts, no forms, no navigation of this page.
        body += f"<h2>HTML</h2><iframe sandbox srcdoc=\"{html.escape(html_part.get_content(), quote=True)}\"></iframe>"
    if text_part is not None:
        body += f"<h2>Text</h2><pre>{html.escape(text_part.get_content())}</pre>"
    files = "".join(
        f"<li><a href='/messages/{html.escape(key)}/parts/{n}'>{html.escape(name)}</a></li>"
        for n, name in attachments(message)
    )
    if files:
        body += f"<h2>Attachments</h2><ul>{files}</ul>"
    return page(
        str(message["Subject"] or "E-mail"),
        f"<p><a href='/'>&larr; all e-mails</a></p><table>{headers}</table>{body}",
    )


def page(title: str, content: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{content}</body></html>"
    )


class Handler(BaseHTTPRequestHandler):
    maildir: Path

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if not parts:
            self.send(HTTPStatus.OK, "text/html; charset=utf-8", list_page(read_mails(self.maildir)).encode())
        elif parts == ["api", "messages"]:
            listed = [summary(key, m) for key, m in read_mails(self.maildir)]
            self.send(HTTPStatus.OK, "application/json", json.dumps(listed).encode())
        elif parts[0] == "messages" and len(parts) in (2, 4):
            self.message(parts[1], parts[3] if len(parts) == 4 and parts[2] == "parts" else None)
        else:
            self.send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

    def message(self, key: str, part: str | None) -> None:
        found = dict(read_mails(self.maildir)).get(key) if KEY.match(key) else None
        if found is None:
            self.send(HTTPStatus.NOT_FOUND, "text/plain", b"no such e-mail")
            return
        if part is None:
            self.send(HTTPStatus.OK, "text/html; charset=utf-8", message_page(key, found).encode())
            return
        walked = list(found.walk())
        if not part.isdigit() or int(part) >= len(walked) or walked[int(part)].is_multipart():
            self.send(HTTPStatus.NOT_FOUND, "text/plain", b"no such part")
            return
        chosen = walked[int(part)]
        name = chosen.get_filename() or f"part-{part}"
        self.send(
            HTTPStatus.OK,
            chosen.get_content_type(),
            chosen.get_payload(decode=True) or b"",
            {"Content-Disposition": f"attachment; filename=\"{name.replace(chr(34), '')}\""},
        )

    def send(self, status: HTTPStatus, content_type: str, body: bytes, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        pass  # requests are not logged: the pages show addresses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1080)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument(
        "--allow-any-host",
        action="store_true",
        help="allow a non-loopback --host (inside a container, whose published port stays on loopback)",
    )
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost") and not args.allow_any_host:
        print("mail_viewer: listens on loopback only (--allow-any-host to override)", file=sys.stderr)
        return 2
    Handler.maildir = args.maildir
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"mail viewer on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
