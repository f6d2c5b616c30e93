"""The standard Databricks configuration: environment variables and ``~/.databrickscfg``.

Precedence follows the Databricks SDK: explicit ``DATABRICKS_*`` variables first; the config
file only when a profile is named (``DATABRICKS_CONFIG_PROFILE``) or nothing is set in the
environment. The result is a connection dict of one of the two connection types.
"""
from __future__ import annotations

import configparser
import os

from ..errors import ConnectorError
from .hosts import is_account_host, normalize_host, split_url

ENV_KEYS = {"host": "DATABRICKS_HOST", "token": "DATABRICKS_TOKEN", "client_id": "DATABRICKS_CLIENT_ID",
            "client_secret": "DATABRICKS_CLIENT_SECRET", "account_id": "DATABRICKS_ACCOUNT_ID",
            "auth_type": "DATABRICKS_AUTH_TYPE"}


def from_environment(env=None) -> dict | None:
    env = os.environ if env is None else env
    attrs = {k: env[v] for k, v in ENV_KEYS.items() if env.get(v)}
    profile = env.get("DATABRICKS_CONFIG_PROFILE")
    if profile or not ({"host", "token", "client_id"} & attrs.keys()):
        from_file = _profile(env, profile)
        if from_file:
            attrs = {**from_file, **attrs}
    if not attrs.get("host"):
        return None
    return to_connection(attrs)


def to_connection(attrs: dict) -> dict:
    auth_type = attrs.get("auth_type")
    has_pat = bool(attrs.get("token"))
    has_sp = bool(attrs.get("client_id") and attrs.get("client_secret"))
    if has_pat and has_sp and not auth_type:
        raise ConnectorError("configuration", "More than one authorization method is configured (a token and a client id/secret)",
                             hint="Set DATABRICKS_AUTH_TYPE to pat or oauth-m2m, or remove one of them.")
    if auth_type == "pat" or (has_pat and auth_type != "oauth-m2m"):
        return {"type": "personal_access_token", "host": attrs["host"], "token": attrs.get("token", "")}
    if has_sp or auth_type == "oauth-m2m":
        origin = normalize_host(attrs["host"])
        hostname = split_url(origin)[1]
        if is_account_host(hostname):
            if not attrs.get("account_id"):
                raise ConnectorError("configuration", "An account host needs DATABRICKS_ACCOUNT_ID (account_id in a profile)",
                                     hint="Set the account id shown in the account console.")
            token_url = f"{origin}/oidc/accounts/{attrs['account_id']}/v1/token"
        else:
            token_url = f"{origin}/oidc/v1/token"
        return {"type": "service_principal", "token_url": token_url, "scopes": attrs.get("scopes", "all-apis"),
                "client_id": attrs.get("client_id", ""), "client_secret": attrs.get("client_secret", "")}
    raise ConnectorError("configuration", "A host is configured but no credential (token, or client id and secret)",
                         hint="Set DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET.")


def _profile(env, name: str | None) -> dict | None:
    path = env.get("DATABRICKS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".databrickscfg")
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        if name:
            raise ConnectorError("configuration", f"Profile {name!r} was named but {path} does not exist",
                                 hint="Create the profile with the Databricks CLI or unset DATABRICKS_CONFIG_PROFILE.") from None
        return None
    except configparser.Error as exc:
        raise ConnectorError("configuration", f"{path} is not a valid config file ({type(exc).__name__})") from None
    if not name and parser.has_section("__settings__"):
        name = parser.get("__settings__", "default_profile", fallback=None)
    section = name or "DEFAULT"
    if not parser.has_section(section):
        if name:
            raise ConnectorError("configuration", f"Profile {name!r} is not in {path}",
                                 hint=f"Profiles there: {', '.join(s for s in parser.sections() if s != '__settings__') or 'none'}.")
        return None
    return dict(parser.items(section))
