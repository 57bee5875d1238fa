"""Delta Chat profiles on two relays exchange messages; then plain mail is tried at both ends.

Driven by tests/tests/appliance_federation.rs; not a test by itself. Reads a JSON spec
on stdin:

    {"rpc_server": "...", "accounts_dir": "<new directory>",
     "accounts": [{"addr": "...", "password": "...",
                   "imap": {"host": "127.0.0.1", "port": N}, "smtp": {"host": ..., "port": N}},
                  {... the second relay's account ...}],
     "plain": {"submission": {"host": ..., "port": N},   # the first account's relay (465)
               "mx": {"host": ..., "port": N},             # the second account's relay (25)
               "mxdeliv": {"host": ..., "port": N, "name": "<domain>"}}}  # optional: the first's 443

Each profile uses its own relay's servers (certificate checks relaxed: test CA). The two
profiles send each other one encrypted text message. With "plain", the first account then
submits an unencrypted message to the second (its own relay must refuse it), and an
unencrypted message from the first account's address goes straight to the second relay's
port 25 (the receiving relay must refuse it); with "mxdeliv", an unencrypted message from
the second account is posted to the first relay's /mxdeliv. Prints:

    {"received": [{"by", "from", "text", "encrypted"}, ...],
     "plain": {"submission": [code, "text"], "mx": [code, "text"], "mxdeliv": [status, "body"]}}
"""

import json
import smtplib
import ssl
import sys
import time

from deltachat_rpc_client import DeltaChat, Rpc

START = time.monotonic()


def log(*args):
    print(f"federation.py [{time.monotonic() - START:7.2f}s]:", *args, file=sys.stderr, flush=True)


def wait_for_incoming(profile):
    while True:
        event = profile.wait_for_event()
        if event.kind in ("Info", "Warning", "Error"):
            log(profile.get_config("configured_addr"), event.kind, event.msg)
        if event.kind == "IncomingMsg":
            return profile.get_message_by_id(event.msg_id).get_snapshot()


def plain_message(sender, rcpt):
    return (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: plain\r\n"
        "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <plain-federation@test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "This message is not encrypted.\r\n"
    ).encode()


def refusal(send):
    """Runs `send`; returns the SMTP refusal as [code, text], or [250, "accepted"]."""
    try:
        send()
        return [250, "accepted"]
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        return [code, text.decode(errors="replace")]
    except smtplib.SMTPResponseException as e:
        return [e.smtp_code, e.smtp_error.decode(errors="replace")]


def main():
    spec = json.load(sys.stdin)
    result = {"received": []}
    with Rpc(accounts_dir=spec["accounts_dir"], rpc_server_path=spec["rpc_server"]) as rpc:
        dc = DeltaChat(rpc)
        profiles = []
        for account in spec["accounts"]:
            profile = dc.add_account()
            log("configuring", account["addr"])
            profile.add_or_update_transport(
                {
                    "addr": account["addr"],
                    "password": account["password"],
                    "imapServer": account["imap"]["host"],
                    "imapPort": account["imap"]["port"],
                    "imapSecurity": "ssl",
                    "smtpServer": account["smtp"]["host"],
                    "smtpPort": account["smtp"]["port"],
                    "smtpSecurity": "ssl",
                    "certificateChecks": "acceptInvalidCertificates",
                }
            )
            profile.bring_online()
            log("online:", account["addr"])
            profiles.append(profile)

        first, second = profiles
        for sender, receiver in ((first, second), (second, first)):
            sender_addr = sender.get_config("configured_addr")
            receiver_addr = receiver.get_config("configured_addr")
            text = f"hello from {sender_addr} to {receiver_addr}"
            log("sending:", text)
            sender.create_chat(receiver).send_text(text)
            message = wait_for_incoming(receiver)
            log("received by", receiver_addr, ":", message.text)
            result["received"].append(
                {
                    "by": receiver_addr,
                    "from": message.sender.get_snapshot().address,
                    "text": message.text,
                    "encrypted": bool(message.show_padlock),
                }
            )
        for profile in profiles:
            profile.stop_io()

    plain = spec.get("plain")
    if plain:
        a, b = spec["accounts"]
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        message = plain_message(a["addr"], b["addr"])

        def submit():
            s = plain["submission"]
            with smtplib.SMTP_SSL(s["host"], s["port"], context=ctx, timeout=60) as smtp:
                smtp.login(a["addr"], a["password"])
                smtp.sendmail(a["addr"], [b["addr"]], message)

        def mx():
            m = plain["mx"]
            with smtplib.SMTP(m["host"], m["port"], timeout=60) as smtp:
                smtp.ehlo(a["addr"].split("@")[1])
                smtp.starttls(context=ctx)
                smtp.ehlo(a["addr"].split("@")[1])
                smtp.sendmail(a["addr"], [b["addr"]], message)

        result["plain"] = {"submission": refusal(submit), "mx": refusal(mx)}
        if "mxdeliv" in plain:
            # The first relay's own /mxdeliv, as another relay would post to it.
            import http.client

            h = plain["mxdeliv"]
            conn = http.client.HTTPSConnection(h["host"], h["port"], context=ctx, timeout=60)
            conn.putrequest("POST", "/mxdeliv", skip_host=True)
            conn.putheader("Host", h["name"])
            conn.putheader("X-MAIL-FROM", b["addr"])
            conn.putheader("X-MAIL-TO", a["addr"])
            body = plain_message(b["addr"], a["addr"])
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            result["plain"]["mxdeliv"] = [response.status, response.read().decode(errors="replace")]
        log("plain:", result["plain"])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
