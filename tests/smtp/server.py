"""A real SMTP server on loopback for the test suite (aiosmtpd).

Usage: server.py PORT MAILDIR MODEFILE

Every accepted message is written to MAILDIR as NNNNNN.eml (the raw message)
with its envelope recipients in NNNNNN.rcpt. How the server answers DATA is
read from MODEFILE on each message, so a test can change it while running:
  accept           250, store the message
  tempfail         451 (try again later)
  permfail         550 (mailbox unavailable)
  slow SECONDS     wait, then accept
"""

import asyncio
import itertools
import os
import sys

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, maildir, modefile):
        self.maildir = maildir
        self.modefile = modefile
        self.counter = itertools.count(1)

    def mode(self):
        try:
            with open(self.modefile, encoding="utf-8") as f:
                return f.read().strip() or "accept"
        except FileNotFoundError:
            return "accept"

    async def handle_DATA(self, server, session, envelope):
        mode = self.mode()
        if mode == "tempfail":
            return "451 4.3.0 Temporary failure, try again later"
        if mode == "permfail":
            return "550 5.1.1 Mailbox unavailable"
        if mode.startswith("slow"):
            await asyncio.sleep(float(mode.split()[1]))
        number = next(self.counter)
        base = os.path.join(self.maildir, f"{os.getpid()}-{number:06d}")
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".rcpt", "w", encoding="utf-8") as f:
            f.write("\n".join(envelope.rcpt_tos))
        os.replace(base + ".tmp", base + ".eml")
        return "250 2.0.0 Stored"


def main():
    port, maildir, modefile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.makedirs(maildir, exist_ok=True)
    controller = Controller(Handler(maildir, modefile), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        # Runs until the test closes our stdin or kills us.
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
