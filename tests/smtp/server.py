"""A real SMTP server for the e-mail tests: Debian's python3-aiosmtpd on loopback.

Usage: server.py PORT MODE CERT KEY USER PASSWORD OUT REFUSED
MODE is `starttls` (STARTTLS required before anything else, AUTH only after it) or
`implicit` (TLS from the first byte, as on port 465). Every accepted message is appended to
OUT as one JSON line (envelope, the raw message, and its headers and parts as Python's
e-mail package reads them); RCPT TO REFUSED is refused with 550.
Prints "ready" once it listens; stops on SIGTERM.
"""
import base64
import json
import signal
from email import policy
from email.parser import BytesParser
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, mode, cert, key, user, password, out, refused = sys.argv[1:9]


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() == refused.lower():
            return "550 5.1.1 <%s>: recipient refused by the test server" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "authenticated": bool(session.authenticated),
                "data": envelope.content.decode("utf-8", "replace"),
                # The message as Python's e-mail package reads it: headers, and each part
                # decoded (text as text, anything else as base64).
                "headers": {k: str(v) for k, v in message.items()},
                "body": part(message),
            }) + "\n")
        return "250 2.0.0 Ok: queued as TEST%d" % len(envelope.rcpt_tos)


def part(p):
    node = {"type": p.get_content_type()}
    if p.is_multipart():
        node["parts"] = [part(q) for q in p.iter_parts()]
    elif p.get_content_maintype() == "text":
        node["text"] = p.get_content()
    else:
        node["base64"] = base64.b64encode(p.get_content()).decode()
    node["content_id"] = p.get("Content-ID")
    node["disposition"] = p.get_content_disposition()
    return node


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user and auth_data.password.decode() == password)
    return AuthResult(success=True) if ok else AuthResult(success=False, handled=False)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
common = dict(hostname="127.0.0.1", port=int(port), server_hostname="smtp.test",
              authenticator=authenticator, auth_required=True)
if mode == "starttls":
    controller = Controller(Handler(), tls_context=ctx, require_starttls=True,
                            auth_require_tls=True, **common)
else:
    # aiosmtpd 1.4 does not count implicit TLS as encrypted for AUTH (its issues 274, 281).
    controller = Controller(Handler(), ssl_context=ctx, auth_require_tls=False, **common)
controller.start()
print("ready", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
controller.stop()
