"""Two Delta Chat profiles exchange an end-to-end encrypted message in both directions.

Driven by the Rust tests (tests/src/deltachat.rs); not a test by itself. Reads a JSON
spec on stdin:

    {"rpc_server": "<path of deltachat-rpc-server>",
     "accounts_dir": "<directory that does not exist yet>",
     "imap": {"host": "127.0.0.1", "port": 993[, "security": "ssl" | "starttls"]},
     "smtp": {"host": "127.0.0.1", "port": 465[, "security": "ssl" | "starttls"]},
     "accounts": [{"addr": "...", "password": "..."}, {"addr": "...", "password": "..."}]}

and prints one JSON object on stdout:

    {"configured": ["<addr>", "<addr>"],
     "received": [{"by": "<addr>", "from": "<addr>", "text": "...", "encrypted": true}, ...]}

Both profiles are configured with explicit servers, so no autoconfig or DNS lookup
happens, and with certificate checks relaxed ("acceptInvalidCertificates") because the
relay's certificate comes from the test CA (research/deltachat-client.md §5.5, §5.6).
Progress goes to stderr.
"""

import json
import sys
import time

from deltachat_rpc_client import DeltaChat, Rpc

START = time.monotonic()


def log(*args):
    print(f"exchange.py [{time.monotonic() - START:7.2f}s]:", *args, file=sys.stderr, flush=True)


def wait_for_incoming(profile):
    """Waits for the next incoming message, logging the core's events on the way."""
    while True:
        event = profile.wait_for_event()
        if event.kind in ("Info", "Warning", "Error"):
            log(profile.get_config("configured_addr"), event.kind, event.msg)
        if event.kind == "IncomingMsg":
            return profile.get_message_by_id(event.msg_id).get_snapshot()


def main():
    spec = json.load(sys.stdin)
    result = {"configured": [], "received": []}
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
                    "imapServer": spec["imap"]["host"],
                    "imapPort": spec["imap"]["port"],
                    "imapSecurity": spec["imap"].get("security", "ssl"),
                    "smtpServer": spec["smtp"]["host"],
                    "smtpPort": spec["smtp"]["port"],
                    "smtpSecurity": spec["smtp"].get("security", "ssl"),
                    "certificateChecks": "acceptInvalidCertificates",
                }
            )
            profile.bring_online()
            log("online:", account["addr"])
            result["configured"].append(profile.get_config("configured_addr"))
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
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
