"""The pages of an agency's administrators: the users of their own agency, as ``mappa
users`` manages them (``broker.cli.users``), through the same ``UserStore`` methods.

For ``Role.AGENCY_ADMIN`` only (a 403 page for every other role). The agency is always
the signed-in administrator's own (``SignedIn.agency``): a user of another agency, a
username that names nobody and one that cannot be a username are all the same "Page not
found", so no address tells whether a user exists elsewhere. Usernames are in paths (they
name staff, not the people the service is about); every act is a POSTed form with the
session's CSRF token (``ctx.checked_form``), recorded in the users' history with the
administrator's username as its actor.

- ``GET /users``: the agency's users: username, role, state (active, locked, disabled),
  when added. The store keeps no last sign-in, so none is shown.
- ``GET /users/new``, ``POST /users/new``: add a user: username, role, and the password
  the administrator sets, typed twice and held to the password policy
  (``check_password_policy``), as the CLI asks for it; a TOTP second factor where the
  role requires one or the administrator asks for it. Each refused field is in the GOV.UK
  error summary. The answer names the user and, if they have a second factor, shows its
  secret and ``otpauth://`` URI this once (``Cache-Control: no-store``): nothing shows
  them again.
- ``GET /user/{username}``: the user, what may be done to them, and their history
  (``UserStore.history``).
- ``GET /user/{username}/disable``, ``POST /user/{username}/disable``: a confirmation,
  then ``UserStore.disable``, which ends the user's sessions in the same transaction.
- ``GET /user/{username}/reset``, ``POST /user/{username}/reset``: a new password, a new
  TOTP secret where they need or had one (or the administrator asks), the lock and the
  failure count cleared, their sessions ended (``UserStore.reset``); the new secret is
  shown once, ``no-store``.

An administrator cannot disable or reset their own account here (a 409 page saying so):
disabling it would shut out the person doing it, and a reset of their own would take
their second factor from them mid-session. Another administrator of the agency, or the
operator with ``mappa users``, does it.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations.

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from broker.console.agency import when
from broker.console.context import PageContext
from broker.console.signing_in import SignedIn, console_path, text_field
from broker.identity.errors import PasswordRefused, UserRefused
from broker.identity.passwords import (
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    check_password_policy,
)
from broker.identity.roles import Role
from broker.identity.users import USERNAME_PATTERN, Enrolment, User, UserState

# Who may use these pages.
ROLES = (Role.AGENCY_ADMIN,)
# This group's items in the service navigation, per role: (text, path under /console).
NAVIGATION: dict[Role, list[tuple[str, str]]] = {Role.AGENCY_ADMIN: [("Users", "/users")]}
# The roles an administrator may give, in the order the form offers them (the user is
# always of the administrator's own agency). Not an IG officer's: that role reads the
# whole deployment's audit ledger, beyond any one agency, so only the deployment's
# operator makes one (``mappa users add``).
GRANTABLE_ROLES = tuple(r for r in Role if not r.sees_audit_ledger)
# Each role as the pages name it, and what it is for (the add form's hints).
ROLE_LABELS = {
    Role.AGENCY_USER: "Agency user",
    Role.AGENCY_ADMIN: "Agency administrator",
    Role.COORDINATOR: "MAPPA co-ordinator",
    Role.IG_OFFICER: "Information-governance officer",
}
ROLE_HINTS = {
    Role.AGENCY_USER: "Works the agency's cases: reads what is shared with the agency",
    Role.AGENCY_ADMIN: "Manages the agency's users. Always needs a security code",
    Role.COORDINATOR: "Runs the area's case teams and transfers",
    Role.IG_OFFICER: (
        "Sees the audit ledger, never a record's content. Always needs a security code"
    ),
}
# Each state's GOV.UK tag colour.
STATE_TAGS = {
    UserState.ACTIVE: "govuk-tag--green",
    UserState.LOCKED: "govuk-tag--orange",
    UserState.DISABLED: "govuk-tag--grey",
}
# What each recorded act is called in a user's history, by its value; any other act as
# its value reads ("sign-in" is "Sign in").
ACT_NAMES = {
    "add": "Added",
    "disable": "Disabled",
    "reset": "Reset",
    "lock": "Locked after failed sign-ins",
}
# A page with a TOTP secret on it is never stored by a browser or a proxy.
NO_STORE = {"Cache-Control": "no-store"}
# What each password-policy refusal says on the form, by its code.
PASSWORD_ERRORS = {
    "password.control-character": (
        "The password must not contain tabs, line breaks or other control characters"
    ),
    "password.too-short": (
        f"The password must be {MIN_PASSWORD_CHARS} characters or more. A few unrelated "
        "words make a good one"
    ),
    "password.too-long": f"The password must be {MAX_PASSWORD_CHARS} characters or fewer",
    "password.contains-username": "The password must not contain the username",
}
USERNAME_ERROR = (
    "Enter a username of up to 100 lower-case letters, digits, full stops, hyphens or "
    "underscores, starting with a letter or digit"
)
# Why an act on a user is refused, for the 409 page.
OWN_ACCOUNT = (
    "You cannot {act} your own account. Ask another administrator of your agency, or the "
    "service's operator"
)
DISABLED_ALREADY = "This user is disabled already"
DISABLED_NO_RESET = "A disabled user cannot be reset. Add a new user instead"
# What a finished act says on the user's page, by the ``done`` query value.
DONE = {"disabled": "{username} is disabled. Any sessions they had have ended."}
_USERNAME = re.compile(USERNAME_PATTERN)
# What of a refused username the form shows again: more than a username can hold.
MAX_USERNAME_SHOWN = 200


def act_name(act: str) -> str:
    """A recorded act as a user's history names it."""
    return ACT_NAMES.get(act) or act.replace("-", " ").capitalize()


def administrator(who: SignedIn) -> SignedIn:
    """``who``, if an agency administrator; a 403 page for anyone else."""
    who.require(*ROLES)
    return who


def member(ctx: PageContext, who: SignedIn, username: str) -> User:
    """The user ``username`` of ``who``'s agency; a 404 page, the same whichever, for a
    username that cannot be one, names nobody or names a user of another agency."""
    found = ctx.identity().users.find(username) if _USERNAME.fullmatch(username) else None
    if found is None or found.agency != who.agency:
        raise HTTPException(404, "no such user")
    return found


def password_from(form: FormData, username: str, errors: dict[str, str]) -> str | None:
    """The password of a form (``password``, typed again as ``password-again``) if it may
    be set for ``username``; else None, with what is wrong added to ``errors``."""
    password, again = text_field(form, "password"), text_field(form, "password-again")
    if not password:
        errors["password"] = "Enter a password"  # noqa: S105 - a message, not a password
        return None
    try:
        check_password_policy(password, username=username)
    except PasswordRefused as refused:
        errors["password"] = PASSWORD_ERRORS.get(refused.code, refused.reason)
        return None
    if again != password:
        errors["password-again"] = "Enter the same password again"
        return None
    return password


@dataclass(frozen=True)
class NewUser:
    """The add form as posted: what was typed (never the password), and what is wrong."""

    username: str
    role: Role | None
    totp: bool
    password: str | None
    errors: dict[str, str]

    @classmethod
    def read(cls, form: FormData, ctx: PageContext) -> "NewUser":
        errors: dict[str, str] = {}
        username = text_field(form, "username").strip()
        if not username:
            errors["username"] = "Enter a username"
        elif _USERNAME.fullmatch(username) is None:
            errors["username"] = USERNAME_ERROR
        elif ctx.identity().users.find(username) is not None:
            errors["username"] = "There is a user with this username already"
        chosen = text_field(form, "role")
        role = next((r for r in GRANTABLE_ROLES if r.value == chosen), None)
        if role is None:
            errors["role"] = "Select the user's role"
        password = password_from(form, username, errors)
        return cls(username, role, text_field(form, "totp") == "yes", password, errors)


def administration_pages(ctx: PageContext) -> APIRouter:
    """The administrators' pages over ``ctx`` (module docstring). Returns the router; its
    routes raise ``HTTPException`` (a GOV.UK error page) or the store's ``MappaError``
    (the app's problem page at its status) and nothing else of their own."""
    router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
    _listing_routes(router, ctx)
    _act_routes(router, ctx)
    return router


def _enrolled(
    ctx: PageContext, request: Request, who: SignedIn, enrolment: Enrolment, act: str
) -> HTMLResponse:
    """The answer to an add or a reset: the user, and their TOTP secret this once."""
    page = ctx.page(
        request, "administration/enrolled.html", who,
        user=enrolment.user, act=act, secret=enrolment.totp_secret,
        uri=enrolment.provisioning_uri, role_labels=ROLE_LABELS,
    )  # fmt: skip
    page.headers.update(NO_STORE)
    return page


def _listing_routes(router: APIRouter, ctx: PageContext) -> None:
    """The list of users, the add form and a user's page, on ``router``."""
    Who = Annotated[SignedIn, Depends(ctx.signed_in)]
    Posted = Annotated[tuple[SignedIn, FormData], Depends(ctx.checked_form)]

    def add_page(
        request: Request, who: SignedIn, *, status_code: int = 200, form: NewUser | None = None
    ) -> HTMLResponse:
        return ctx.page(
            request, "administration/add.html", who, status_code=status_code,
            errors=form.errors if form else {},
            username=form.username[:MAX_USERNAME_SHOWN] if form else "",
            roles=role_items(form.role if form else None), totp=bool(form and form.totp),
            min_chars=MIN_PASSWORD_CHARS,
        )  # fmt: skip

    # Sync routes: FastAPI runs them on its thread pool, which the identity database
    # allows, so that Argon2id's quarter of a second never holds the event loop.

    @router.get("/users")
    def users(request: Request, who: Who) -> HTMLResponse:
        administrator(who)
        listed = ctx.identity().users.list(agency=who.agency)
        return ctx.page(
            request, "administration/users.html", who,
            users=listed, role_labels=ROLE_LABELS, state_tags=STATE_TAGS, when=when,
        )  # fmt: skip

    @router.get("/users/new")
    def new_user(request: Request, who: Who) -> HTMLResponse:
        return add_page(request, administrator(who))

    @router.post("/users/new")
    def add_user(request: Request, posted: Posted) -> HTMLResponse:
        who, form = administrator(posted[0]), posted[1]
        asked = NewUser.read(form, ctx)
        if asked.errors or asked.role is None or asked.password is None:
            return add_page(request, who, status_code=422, form=asked)
        parts = ctx.identity()
        try:
            enrolment = parts.users.add(
                asked.username, agency=who.agency, role=asked.role, password=asked.password,
                actor=who.username, now=parts.clock(), totp=asked.totp,
            )  # fmt: skip
        except UserRefused as refused:
            if refused.code != "users.exists":
                raise
            # Added by someone else since the form was read.
            asked.errors["username"] = "There is a user with this username already"
            return add_page(request, who, status_code=422, form=asked)
        return _enrolled(ctx, request, who, enrolment, "added")

    @router.get("/user/{username}")
    def user(request: Request, username: str, who: Who, done: str = "") -> HTMLResponse:
        administrator(who)
        found = member(ctx, who, username)
        notice = DONE.get(done, "").format(username=found.username)
        return ctx.page(
            request, "administration/user.html", who,
            user=found, history=ctx.identity().users.history(username=found.username),
            own=found.username == who.username, notice=notice, role_labels=ROLE_LABELS,
            state_tags=STATE_TAGS, when=when, act_name=act_name,
        )  # fmt: skip


def _act_routes(router: APIRouter, ctx: PageContext) -> None:
    """Disabling and resetting a user, on ``router``."""
    Who = Annotated[SignedIn, Depends(ctx.signed_in)]
    Posted = Annotated[tuple[SignedIn, FormData], Depends(ctx.checked_form)]

    def act_page(
        request: Request,
        who: SignedIn,
        target: User,
        act: str,
        *,
        status_code: int = 200,
        errors: dict[str, str] | None = None,
        totp: bool = False,
    ) -> HTMLResponse:
        """The confirmation of ``act`` ("disable" or "reset") on ``target``, or why it
        cannot be done (a 409, with no form)."""
        refusal = _refusal(who, target, act)
        return ctx.page(
            request, f"administration/{act}.html", who,
            status_code=409 if refusal else status_code, user=target, refusal=refusal,
            errors=errors or {}, totp=totp, role_labels=ROLE_LABELS,
            min_chars=MIN_PASSWORD_CHARS,
        )  # fmt: skip

    @router.get("/user/{username}/disable")
    def disable_form(request: Request, username: str, who: Who) -> HTMLResponse:
        administrator(who)
        return act_page(request, who, member(ctx, who, username), "disable")

    @router.post("/user/{username}/disable")
    def disable(request: Request, username: str, posted: Posted) -> Response:
        who = administrator(posted[0])
        target = member(ctx, who, username)
        if _refusal(who, target, "disable"):
            return act_page(request, who, target, "disable")
        parts = ctx.identity()
        try:
            parts.users.disable(target.username, actor=who.username, now=parts.clock())
        except UserRefused as refused:
            if refused.code != "users.disabled":
                raise
            # Disabled by someone else since the page was read: the page says so.
            return act_page(request, who, parts.users.get(target.username), "disable")
        where = f"{console_path(request)}/user/{target.username}?done=disabled"
        return RedirectResponse(where, status_code=303)

    @router.get("/user/{username}/reset")
    def reset_form(request: Request, username: str, who: Who) -> HTMLResponse:
        administrator(who)
        return act_page(request, who, member(ctx, who, username), "reset")

    @router.post("/user/{username}/reset")
    def reset(request: Request, username: str, posted: Posted) -> HTMLResponse:
        who, form = administrator(posted[0]), posted[1]
        target = member(ctx, who, username)
        totp = text_field(form, "totp") == "yes"
        errors: dict[str, str] = {}
        password = None if _refusal(who, target, "reset") else password_from(form, username, errors)
        if password is None:
            return act_page(
                request, who, target, "reset", status_code=422, errors=errors, totp=totp
            )
        parts = ctx.identity()
        try:
            enrolment = parts.users.reset(
                target.username, password=password, actor=who.username, now=parts.clock(),
                totp=totp,
            )  # fmt: skip
        except UserRefused as refused:
            if refused.code != "users.disabled":
                raise
            return act_page(request, who, parts.users.get(target.username), "reset")
        return _enrolled(ctx, request, who, enrolment, "reset")


def _refusal(who: SignedIn, target: User, act: str) -> str:
    """Why ``who`` may not ``act`` on ``target`` ("" if they may): their own account, or
    a user disabled already."""
    if target.username == who.username:
        return OWN_ACCOUNT.format(act=act)
    if target.state is UserState.DISABLED:
        return DISABLED_ALREADY if act == "disable" else DISABLED_NO_RESET
    return ""


def role_items(chosen: Role | None) -> list[dict[str, Any]]:
    """The add form's role radios, ``chosen`` checked."""
    return [
        {"value": r.value, "text": ROLE_LABELS[r], "hint": {"text": ROLE_HINTS[r]},
         "checked": r is chosen}
        for r in GRANTABLE_ROLES
    ]  # fmt: skip
