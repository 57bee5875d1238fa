"""Makes real Delta Chat messages for the mail-rules corpus (tests/corpus/).

Not a test: run once against a relay (for example the appliance started by hand, see
tests/corpus/README.md) to (re)generate the captured messages. Four profiles (alice, bob,
carol, dave) exchange an encrypted text message, an encrypted file of about 100 KB, a
contact Secure-Join (carol scans alice's QR code: `vc-request`) and a group Secure-Join
(dave scans the group's QR code: `vg-request`). Afterwards every message in every INBOX
is saved as it was stored, with the envelope it had, to `out_dir`.

Reads a JSON spec on stdin:

    {"rpc_server": "...", "accounts_dir": "<new directory>", "out_dir": "<directory>",
     "imap": {"host": "127.0.0.1", "port": 993}, "smtp": {"host": "127.0.0.1", "port": 465},
     "accounts": [{"addr": "...", "password": "..."} x 4]}
"""

import imaplib
import json
import os
import ssl
import sys
import time

from deltachat_rpc_client import DeltaChat, Rpc

START = time.monotonic()


def log(*args):
    print(f"capture [{time.monotonic() - START:7.2f}s]:", *args, file=sys.stderr, flush=True)


def wait_incoming(profile):
    while True:
        event = profile.wait_for_event()
        if event.kind in ("Warning", "Error"):
            log(profile.get_config("configured_addr"), event.kind, event.msg)
        if event.kind == "IncomingMsg":
            return profile.get_message_by_id(event.msg_id).get_snapshot()


def main():
    spec = json.load(sys.stdin)
    names = ["alice", "bob", "carol", "dave"]
    with Rpc(accounts_dir=spec["accounts_dir"], rpc_server_path=spec["rpc_server"]) as rpc:
        dc = DeltaChat(rpc)
        p = {}
        for name, account in zip(names, spec["accounts"]):
            profile = dc.add_account()
            profile.add_or_update_transport(
                {
                    "addr": account["addr"],
                    "password": account["password"],
                    "imapServer": spec["imap"]["host"],
                    "imapPort": spec["imap"]["port"],
                    "imapSecurity": "ssl",
                    "smtpServer": spec["smtp"]["host"],
                    "smtpPort": spec["smtp"]["port"],
                    "smtpSecurity": "ssl",
                    "certificateChecks": "acceptInvalidCertificates",
                }
            )
            # Keep every message on the server (no deletion after download).
            profile.set_config("bcc_self", "1")
            profile.set_config("displayname", name.capitalize())
            profile.bring_online()
            log("online:", name)
            p[name] = profile

        alice, bob, carol, dave = (p[n] for n in names)
        log("text alice -> bob")
        alice.create_chat(bob).send_text("Hello Bob, this is an end-to-end encrypted message.")
        log("bob got:", wait_incoming(bob).text)
        path = os.path.join(spec["accounts_dir"], "..", "attachment.txt")
        with open(path, "w") as f:
            line = "The quick brown fox jumps over the lazy dog. 0123456789\n"
            f.write(line * (100_000 // len(line)))
        log("file bob -> alice")
        bob.create_chat(alice).send_file(path)
        log("alice got:", wait_incoming(alice).text)
        log("contact securejoin: carol scans alice")
        carol.secure_join(alice.get_qr_code())
        carol.wait_for_securejoin_joiner_success()
        log("carol joined")
        log("group securejoin: dave scans the group of alice")
        group = alice.create_group("Corpus group")
        dave.secure_join(group.get_qr_code())
        dave.wait_for_securejoin_joiner_success()
        log("dave joined")
        group.send_text("Welcome to the group")
        time.sleep(3)
        for profile in p.values():
            profile.stop_io()

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    os.makedirs(spec["out_dir"], exist_ok=True)
    index = []
    for name, account in zip(names, spec["accounts"]):
        imap = imaplib.IMAP4_SSL(spec["imap"]["host"], spec["imap"]["port"], ssl_context=ctx)
        imap.login(account["addr"], account["password"])
        for folder in ("INBOX",):
            imap.select(folder, readonly=True)
            _, data = imap.uid("search", None, "ALL")
            for uid in data[0].split():
                _, parts = imap.uid("fetch", uid, "(BODY.PEEK[])")
                raw = parts[0][1]
                file = f"{name}-{folder.lower()}-{int(uid):03d}.eml"
                with open(os.path.join(spec["out_dir"], file), "wb") as f:
                    f.write(raw)
                head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
                index.append({"file": file, "mailbox": account["addr"], "head": head[:2000]})
        imap.logout()
    json.dump(
        {"accounts": dict(zip(names, (a["addr"] for a in spec["accounts"]))), "messages": index},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
