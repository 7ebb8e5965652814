"""The arena's command line: its arguments, the classroom they describe, the addresses to share."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import socket
from pathlib import Path

from apps.guard import Classroom, new_code, parse_groups


def share_urls(host: str, port: int) -> list[str]:
    """The addresses students type: this machine's LAN addresses when serving on every interface."""
    if host not in ("0.0.0.0", "::", ""):
        return [f"http://{host}:{port}"]
    return [f"http://{address}:{port}" for address in lan_addresses()] or [
        f"http://localhost:{port}"
    ]


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (no packet is sent to find them)."""
    found = set()
    with contextlib.suppress(OSError):
        found.update(socket.gethostbyname_ex(socket.gethostname())[2])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("10.255.255.255", 1))  # a UDP connect sends nothing: it picks the interface
        found.add(probe.getsockname()[0])
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


def port_number(text: str) -> int:
    """`--port`: a TCP port, 1 to 65535."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, got {text!r}")
    return int(text)


def quota(text: str) -> int:
    """`--quota`: votes per student, 1 or more (0 would refuse every vote with a thank-you)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"a quota is a whole number of votes, 1 or more, got {text!r}"
        )
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The RLHF Lab arena.")
    parser.add_argument("--run", type=Path, help="a pipeline run folder, e.g. runs/tiny")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH_OR_HUB_ID")
    parser.add_argument("--db", type=Path, default=Path("data/arena.sqlite"))
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve a classroom LAN")
    parser.add_argument("--port", type=port_number, default=7860)
    parser.add_argument("--classroom", action="store_true", help="join code, password, quotas")
    parser.add_argument("--join-code", default="")
    parser.add_argument(
        "--groups", default="",
        help="classroom: one join code per group, e.g. 'terse,warm' (votes carry the group)",
    )  # fmt: skip
    parser.add_argument("--password", default="", help="instructor password")
    parser.add_argument("--quota", type=quota, default=500, help="votes per annotator")
    parser.add_argument("--no-browser", action="store_true")
    return parser.parse_args(argv)


def classroom_from_args(args: argparse.Namespace) -> Classroom:
    """The classroom's rules; its secret follows its codes, so a restart keeps students' ids."""
    classroom = Classroom(quota=args.quota)
    if args.groups and not args.classroom:
        raise ValueError("--groups gives each group a join code: it needs --classroom")
    if args.classroom:
        classroom.join_code = args.join_code or new_code()
        classroom.password = args.password or new_code(6)
        both = f"{classroom.join_code}\0{classroom.password}".encode()
        classroom.secret = hashlib.sha256(b"rlhf-arena\0" + both).hexdigest()
        classroom.group_codes = {  # derived like the secret: a restart keeps every group's code
            group: hashlib.sha256(f"{classroom.secret}\0{group}".encode()).hexdigest()[:6]
            for group in parse_groups(args.groups)
        }
    return classroom
