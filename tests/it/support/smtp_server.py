#!/usr/bin/env python3
"""Small SMTP server for healthprobe's integration tests (aiosmtpd).

Started by tests/it/support/smtp.rs with the venv's python. Listens on
--host/--port (loopback only) and prints "READY" once the socket is bound.

Options:
  --tls-cert/--tls-key   offer STARTTLS with this certificate chain and key
                         (without them STARTTLS is not offered)
  --require-starttls     refuse mail commands before STARTTLS
  --auth-user/--auth-password
                         accept AUTH PLAIN/LOGIN with these credentials;
                         without them every AUTH attempt is refused (535)
  --auth-allow-plaintext allow AUTH before STARTTLS (default: TLS required)
  --mode normal|drop-after-banner
                         drop-after-banner: send the 220 greeting, then close
  --maildir DIR          store each received message as DIR/<n>.eml
"""

import argparse
import asyncio
import itertools
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class SaveHandler:
    def __init__(self, maildir):
        self.maildir = maildir
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        if self.maildir:
            n = next(self.counter)
            tmp = os.path.join(self.maildir, f".{n}.tmp")
            with open(tmp, "wb") as f:
                f.write(f"X-Hp-Mail-From: {envelope.mail_from}\r\n".encode())
                for rcpt in envelope.rcpt_tos:
                    f.write(f"X-Hp-Rcpt-To: {rcpt}\r\n".encode())
                content = envelope.original_content or envelope.content
                if isinstance(content, str):
                    content = content.encode()
                f.write(content)
            os.rename(tmp, os.path.join(self.maildir, f"{n}.eml"))
        return "250 OK"


def make_authenticator(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            user is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return authenticate


async def drop_after_banner(reader, writer):
    writer.write(b"220 localhost ESMTP healthprobe-test (dropping)\r\n")
    try:
        await writer.drain()
    finally:
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--require-starttls", action="store_true")
    p.add_argument("--auth-user")
    p.add_argument("--auth-password")
    p.add_argument("--auth-allow-plaintext", action="store_true")
    p.add_argument("--mode", choices=["normal", "drop-after-banner"], default="normal")
    p.add_argument("--maildir")
    a = p.parse_args()

    loop = asyncio.get_running_loop()
    if a.mode == "drop-after-banner":
        server = await asyncio.start_server(
            drop_after_banner, a.host, a.port, reuse_address=True
        )
    else:
        tls = None
        if a.tls_cert:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(a.tls_cert, a.tls_key)
        handler = SaveHandler(a.maildir)
        authenticator = make_authenticator(a.auth_user, a.auth_password or "")

        def factory():
            return SMTP(
                handler,
                hostname="localhost",
                ident="healthprobe-test",
                tls_context=tls,
                require_starttls=a.require_starttls,
                auth_require_tls=not a.auth_allow_plaintext,
                authenticator=authenticator,
                timeout=30,
                loop=loop,
            )

        server = await loop.create_server(factory, a.host, a.port, reuse_address=True)

    print("READY", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
