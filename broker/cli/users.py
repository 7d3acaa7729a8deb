"""`mappa users add|disable|reset|list|history`: the named users of agencies
(``broker.identity``, docs/identity.md).

A password is asked for twice on the terminal, or read from ``--password-file`` (one
line) for scripts; it is never an argument, so it stays out of the shell history and
``ps``. Where a user gets a TOTP secret, its ``otpauth://`` URI is printed once, alone on
standard output, for the user's authenticator app. Each act is recorded in the
identity database with the operating-system account and host that ran it
(``mappa users history``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from pathlib import Path

from broker.cli.output import JSON_HELP, print_json, print_table
from broker.errors import ConfigurationError
from broker.files.strict import read_text
from broker.gateway.agency import utc_now
from broker.identity.database import IdentityDatabase, identity_path
from broker.identity.errors import PasswordRefused, UserRefused
from broker.identity.passwords import MAX_PASSWORD_CHARS, check_password_policy
from broker.identity.roles import Role
from broker.identity.users import MAX_ACTOR_CHARS, Enrolment, User, UserStore, check_username
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory

# A password of MAX_PASSWORD_CHARS characters of up to 4 UTF-8 bytes, and a line break.
MAX_PASSWORD_FILE_BYTES = 4 * MAX_PASSWORD_CHARS + 2


USERNAME_HELP = "the user's sign-in name"
FROM_FILE_HELP = "read the password from this file (one line) instead of the terminal"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="named users of agencies: add, disable, reset, list")
    users.add_argument("--data-dir", type=Path, help="deployment data directory (MAPPA_DATA_DIR)")
    cmds = users.add_subparsers(dest="users_command", required=True)

    add = cmds.add_parser("add", help="a new user of an agency in the trust directory")
    add.add_argument(
        "--agency", required=True, metavar="AGENCY_ID", help="agency id, as in the trust directory"
    )
    add.add_argument(
        "--role", required=True, choices=[r.value for r in Role], help="what the user may do"
    )
    add.add_argument("--password-file", type=Path, metavar="FILE", help=FROM_FILE_HELP)
    add.add_argument(
        "--totp",
        action="store_true",
        help="a TOTP second factor for a role that does not require one",
    )
    add.add_argument("username", help=USERNAME_HELP)
    add.set_defaults(handler=cmd_add)

    disable = cmds.add_parser("disable", help="refuse a user from now on; ends their sessions")
    disable.add_argument("username", help=USERNAME_HELP)
    disable.set_defaults(handler=cmd_disable)

    reset = cmds.add_parser(
        "reset", help="new password (and TOTP secret), unlock, end their sessions"
    )
    reset.add_argument("--password-file", type=Path, metavar="FILE", help=FROM_FILE_HELP)
    reset.add_argument(
        "--totp", action="store_true", help="enrol a TOTP second factor if they have none"
    )
    reset.add_argument("username", help=USERNAME_HELP)
    reset.set_defaults(handler=cmd_reset)

    listing = cmds.add_parser("list", help="every user: agency, role, state (never a secret)")
    listing.add_argument("--agency", metavar="AGENCY_ID", help="only this agency's users")
    listing.add_argument("--json", action="store_true", help=JSON_HELP)
    listing.set_defaults(handler=cmd_list)

    history = cmds.add_parser("history", help="who added, disabled, reset users; lockouts")
    history.add_argument("--user", metavar="USERNAME", help="only this user's")
    history.add_argument("--json", action="store_true", help=JSON_HELP)
    history.set_defaults(handler=cmd_history)


def _paths(args: argparse.Namespace) -> DataPaths:
    return DataPaths(args.data_dir or Settings().data_dir)


def _database(paths: DataPaths) -> IdentityDatabase:
    if not paths.directory.exists():
        raise ConfigurationError(f"no deployment at {paths.root}: run `mappa keys init` first")
    return IdentityDatabase(identity_path(paths.root))


def actor() -> str:
    """Who is running this command, as far as the machine says: the operating-system
    account (and the one that ran ``sudo``, if any) at the host."""
    try:
        account = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password file
        account = "unknown"
    sudo = os.environ.get("SUDO_USER")
    who = f"{sudo} (sudo as {account})" if sudo and sudo != account else account
    text = f"os:{who}@{socket.gethostname()}"
    return "".join(c if c.isprintable() else "?" for c in text)[:MAX_ACTOR_CHARS]


def _password(args: argparse.Namespace, username: str) -> str:
    if args.password_file is not None:
        lines = read_text(args.password_file, max_bytes=MAX_PASSWORD_FILE_BYTES).splitlines()
        if len(lines) != 1:
            raise PasswordRefused(
                f"{args.password_file}: expected the password alone on one line",
                code="password.file",
            )
        password = lines[0]
    else:
        if not sys.stdin.isatty():
            raise ConfigurationError(
                "no terminal to ask for the password on: use --password-file PATH",
                code="users.no-terminal",
            )
        password = getpass.getpass(f"new password for {username}: ")
        if getpass.getpass("the same again: ") != password:
            raise PasswordRefused("the two passwords differ", code="password.mismatch")
    check_password_policy(password, username=username)
    return password


def _enrolled(enrolment: Enrolment, done: str) -> None:
    user = enrolment.user
    summary = f"{done} {user.username} ({user.role.value} of {user.agency})"
    uri = enrolment.provisioning_uri
    if uri is None:
        print(summary)
        return
    print(uri)
    print(
        f"{summary}; enrol the otpauth URI above in their authenticator app: it is shown once",
        file=sys.stderr,
    )


def cmd_add(args: argparse.Namespace) -> int:
    paths = _paths(args)
    check_username(args.username)
    load_directory(paths).agency(args.agency)  # refuses an agency not in the directory
    with _database(paths) as database:
        store = UserStore(database)
        if store.find(args.username) is not None:
            raise UserRefused(f"user {args.username} exists already", code="users.exists")
        password = _password(args, args.username)
        enrolment = store.add(
            args.username,
            agency=args.agency,
            role=Role(args.role),
            password=password,
            actor=actor(),
            now=utc_now(),
            totp=args.totp,
        )
    _enrolled(enrolment, "added")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    with _database(_paths(args)) as database:
        user = UserStore(database).disable(args.username, actor=actor(), now=utc_now())
    print(f"disabled {user.username} ({user.role.value} of {user.agency}); sessions ended")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    with _database(_paths(args)) as database:
        store = UserStore(database)
        store.get(args.username)  # refuses an unknown user before asking for a password
        password = _password(args, args.username)
        enrolment = store.reset(
            args.username, password=password, actor=actor(), now=utc_now(), totp=args.totp
        )
    _enrolled(enrolment, "reset")
    return 0


def _row(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "agency": user.agency,
        "role": user.role.value,
        "state": user.state.value,
        "second_factor": "totp" if user.second_factor else None,
        "failed_attempts": user.failed_attempts,
        "created_at": user.created_at,
        "locked_at": user.locked_at,
        "disabled_at": user.disabled_at,
    }


def cmd_list(args: argparse.Namespace) -> int:
    with _database(_paths(args)) as database:
        users = UserStore(database).list(agency=args.agency)
    if args.json:
        print_json([_row(u) for u in users])
        return 0
    print_table(
        ("username", "agency", "role", "state", "factors", "created"),
        (
            (u.username, u.agency, u.role.value, u.state.value,
             "password+totp" if u.second_factor else "password", u.created_at)
            for u in users
        ),
    )  # fmt: skip
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with _database(_paths(args)) as database:
        events = UserStore(database).history(username=args.user)
    if args.json:
        rows = [
            {
                "seq": e.seq,
                "at": e.at,
                "act": e.act.value,
                "username": e.username,
                "agency": e.agency,
                "role": e.role.value,
                "actor": e.actor,
            }
            for e in events
        ]
        print_json(rows)
        return 0
    print_table(
        ("at", "act", "username", "agency", "role", "by"),
        ((e.at, e.act.value, e.username, e.agency, e.role.value, e.actor) for e in events),
    )
    return 0
