#!/usr/bin/env python3
"""An SMTP server for tests that delivers every message to a directory (aiosmtpd).

    smtp_sink.py --port PORT --maildir DIR [--host 127.0.0.1]

Every message accepted is written, exactly as received (the RFC 5322 bytes of DATA, after SMTP's
dot-unstuffing), to DIR/<sequence>-<first recipient>.eml, and one line is printed per message.
The file appears atomically (written under a hidden temp name in DIR, then renamed), so a test
that polls DIR never reads half a message. Recipients at the domain `reject.invalid` are refused
with 550 at RCPT (how tests see a server reject a recipient). `ensure_smtp` in
infra/services.sh starts it; it runs until SIGTERM or SIGINT.
"""

import argparse
import itertools
import os
import re
import signal
import sys
import tempfile
import threading

from aiosmtpd.controller import Controller

# A recipient at this domain is refused: a real server's "no such mailbox", on demand.
REJECTED_DOMAIN = "reject.invalid"


def file_safe(address: str) -> str:
    """The address as a file name part: anything but letters, digits and @._+- becomes _."""
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", address) or "_"


class MaildirHandler:
    def __init__(self, maildir: str):
        self.maildir = maildir
        # Handlers run on the controller's one event loop thread; the lock keeps the numbering
        # right should that ever change.
        self.sequence = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().endswith("@" + REJECTED_DOMAIN):
            return "550 5.1.1 <%s>: mailbox unavailable (smtp_sink refuses %s)" % (
                address,
                REJECTED_DOMAIN,
            )
        # A handle_RCPT of our own must record the recipient itself.
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            seq = next(self.sequence)
        first = envelope.rcpt_tos[0] if envelope.rcpt_tos else "no-recipient"
        name = "%06d-%s.eml" % (seq, file_safe(first))
        # As received: original_content is the DATA bytes before any decoding.
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        # Same directory, hidden name not ending in .eml: readers ignore it until the rename.
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", suffix=".tmp", dir=self.maildir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(self.maildir, name))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        print(
            "smtp_sink: #%d from <%s> to %s, %d bytes -> %s"
            % (seq, envelope.mail_from, ", ".join(envelope.rcpt_tos), len(data), name),
            flush=True,
        )
        return "250 Message accepted for delivery"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()
    os.makedirs(args.maildir, exist_ok=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    # start() returns once the server answers a connection of its own, or raises.
    controller.start()
    print(
        "smtp_sink: listening on %s:%d, delivering to %s" % (args.host, args.port, args.maildir),
        flush=True,
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        controller.stop()
    print("smtp_sink: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
