"""The console's Jinja2 environment: our templates (``templates/``), and GOV.UK
Frontend's components as govuk-frontend-jinja's macros under ``govuk_frontend_jinja/``
(its 3.10 releases port GOV.UK Frontend 5.14.0, the version ``static/govuk`` holds).

Autoescaping is on for every template, whatever its name: a value from a request or a
store is text, never markup. Undefined names render empty (Jinja's default), because the
GOV.UK macros test options that a caller leaves out.
"""

from __future__ import annotations

from jinja2 import ChoiceLoader, Environment, PackageLoader, PrefixLoader
from starlette.templating import Jinja2Templates

SERVICE_NAME = "MAPPA information sharing"


def environment() -> Environment:
    """A new environment over our templates and the GOV.UK macros."""
    env = Environment(
        loader=ChoiceLoader(
            [
                PackageLoader("broker.console", "templates"),
                PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
            ]
        ),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["service_name"] = SERVICE_NAME
    return env


def templates() -> Jinja2Templates:
    """The environment, wrapped for Starlette's ``TemplateResponse``."""
    return Jinja2Templates(env=environment())
