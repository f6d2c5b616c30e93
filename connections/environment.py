"""The standard Databricks configuration: environment variables and ``~/.databrickscfg``.

Names and precedence follow the Databricks SDK's ``Config`` attributes: explicit environment
variables first; the config file only when a profile is named (``DATABRICKS_CONFIG_PROFILE``) or
no host and no credential is set in the environment; a profile's keys are the attribute names
(``host``, ``token``, ``azure_client_id``, ``oidc_token_filepath``, ...). ``DATABRICKS_AUTH_TYPE``
(``auth_type``) picks the method; without it the credentials present decide, in the SDK's order
(pat, oauth-m2m, env-oidc, file-oidc, azure-client-secret), and credentials of more than one method
are an error, as in the SDK. The result is a connection dict of one of the connection types.
"""
from __future__ import annotations

import configparser
import os

from ..errors import ConnectorError
from .hosts import is_account_host, normalize_host, split_url

# SDK attribute -> environment variable(s) (the first is the SDK's name, the rest its aliases)
ENV_KEYS = {"host": ("DATABRICKS_HOST",), "token": ("DATABRICKS_TOKEN",), "client_id": ("DATABRICKS_CLIENT_ID",),
            "client_secret": ("DATABRICKS_CLIENT_SECRET",), "account_id": ("DATABRICKS_ACCOUNT_ID",),
            "auth_type": ("DATABRICKS_AUTH_TYPE",),
            "azure_client_id": ("ARM_CLIENT_ID",), "azure_client_secret": ("ARM_CLIENT_SECRET",),
            "azure_tenant_id": ("ARM_TENANT_ID",), "azure_environment": ("ARM_ENVIRONMENT",),
            "azure_workspace_resource_id": ("DATABRICKS_AZURE_RESOURCE_ID",),
            "oidc_token_env": ("DATABRICKS_OIDC_TOKEN_ENV",),
            "oidc_token_filepath": ("DATABRICKS_OIDC_TOKEN_FILEPATH", "DATABRICKS_OIDC_TOKEN_FILE")}
# Which method each credential attribute belongs to (the SDK's ConfigAttribute auth= tags)
AUTH_OF = {"token": "pat", "client_id": "oauth", "client_secret": "oauth", "azure_client_id": "azure",
           "azure_client_secret": "azure", "azure_tenant_id": "azure", "azure_workspace_resource_id": "azure",
           "oidc_token_env": "env-oidc", "oidc_token_filepath": "file-oidc", "username": "basic", "password": "basic"}
USER_LOGIN = ("external-browser", "databricks-cli", "oauth-u2m", "u2m")


def from_environment(env=None) -> dict | None:
    env = os.environ if env is None else env
    attrs = {}
    for attr, names in ENV_KEYS.items():
        value = next((env[n] for n in names if env.get(n)), None)
        if value:
            attrs[attr] = value
    profile = env.get("DATABRICKS_CONFIG_PROFILE")
    if profile or not ({"host", *AUTH_OF} & attrs.keys()):
        from_file = _profile(env, profile)
        if from_file:
            attrs = {**from_file, **attrs}
    if not attrs.get("host"):
        return None
    return to_connection(attrs, env)


def _methods(attrs: dict) -> list[str]:
    return sorted({AUTH_OF[k] for k, v in attrs.items() if k in AUTH_OF and v})


def to_connection(attrs: dict, env=None) -> dict:
    env = os.environ if env is None else env
    auth_type = (attrs.get("auth_type") or "").strip().lower() or None
    methods = _methods(attrs)
    if auth_type is None and len(methods) > 1:
        raise ConnectorError("configuration", f"More than one authorization method is configured: {' and '.join(methods)}",
                             hint="Set DATABRICKS_AUTH_TYPE (auth_type in a profile) to the one to use, e.g. pat, "
                                  "oauth-m2m, azure-client-secret, env-oidc or file-oidc, or remove the others.")
    if auth_type is None:
        if attrs.get("token"):
            auth_type = "pat"
        elif attrs.get("client_id") and attrs.get("client_secret"):
            auth_type = "oauth-m2m"
        elif attrs.get("oidc_token_env") or env.get("DATABRICKS_OIDC_TOKEN"):
            auth_type = "env-oidc"
        elif attrs.get("oidc_token_filepath"):
            auth_type = "file-oidc"
        elif attrs.get("azure_client_id") and attrs.get("azure_client_secret"):
            auth_type = "azure-client-secret"
    if auth_type == "pat":
        return {"type": "personal_access_token", "host": attrs["host"], "token": attrs.get("token", "")}
    if auth_type in ("oauth-m2m", "oauth"):
        return {"type": "service_principal", "token_url": _token_url(attrs), "scopes": attrs.get("scopes", "all-apis"),
                "client_id": attrs.get("client_id", ""), "client_secret": attrs.get("client_secret", "")}
    if auth_type in ("env-oidc", "file-oidc"):
        doc = {"type": "workload_identity_federation", "host": attrs["host"]}
        for key in ("client_id", "account_id", "scopes"):
            if attrs.get(key):
                doc[key] = attrs[key]
        if auth_type == "file-oidc":
            doc["oidc_token_filepath"] = attrs.get("oidc_token_filepath", "")
        else:
            doc["oidc_token_env"] = attrs.get("oidc_token_env") or "DATABRICKS_OIDC_TOKEN"
        return doc
    if auth_type == "azure-client-secret":
        if not attrs.get("azure_tenant_id"):
            raise ConnectorError("configuration", "A Microsoft Entra ID service principal needs ARM_TENANT_ID "
                                 "(azure_tenant_id in a profile)", hint="Set the Directory (tenant) ID of the application.")
        doc = {"type": "azure_service_principal", "host": attrs["host"], "tenant_id": attrs["azure_tenant_id"],
               "client_id": attrs.get("azure_client_id", ""), "client_secret": attrs.get("azure_client_secret", "")}
        if attrs.get("azure_workspace_resource_id"):
            doc["workspace_resource_id"] = attrs["azure_workspace_resource_id"]
        environment = (attrs.get("azure_environment") or "").strip().upper()
        if environment:
            from .azure import ENVIRONMENTS

            if environment not in ENVIRONMENTS:
                raise ConnectorError("configuration", f"Unknown ARM_ENVIRONMENT {environment!r}",
                                     hint=f"Use one of: {', '.join(ENVIRONMENTS)}.")
            doc["authority_host"] = ENVIRONMENTS[environment]
        return doc
    if auth_type in USER_LOGIN:
        raise ConnectorError("configuration", f"auth_type {auth_type} (a user sign-in in a browser) cannot run here",
                             hint="Run `databricks-connector login --host HOST --output conn.json` once and pass "
                                  "--connection conn.json; the connector refreshes the sign-in from then on.")
    if auth_type is not None:
        raise ConnectorError("configuration", f"Unsupported DATABRICKS_AUTH_TYPE {auth_type!r}",
                             hint="Use pat, oauth-m2m, azure-client-secret, env-oidc or file-oidc.")
    raise ConnectorError("configuration", "A host is configured but no credential",
                         hint="Set DATABRICKS_TOKEN; or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET; or "
                              "ARM_TENANT_ID, ARM_CLIENT_ID and ARM_CLIENT_SECRET; or DATABRICKS_OIDC_TOKEN "
                              "(or DATABRICKS_OIDC_TOKEN_FILEPATH) with DATABRICKS_AUTH_TYPE.")


def _token_url(attrs: dict) -> str:
    origin = normalize_host(attrs["host"])
    if is_account_host(split_url(origin)[1]):
        if not attrs.get("account_id"):
            raise ConnectorError("configuration", "An account host needs DATABRICKS_ACCOUNT_ID (account_id in a profile)",
                                 hint="Set the account id shown in the account console.")
        return f"{origin}/oidc/accounts/{attrs['account_id']}/v1/token"
    return f"{origin}/oidc/v1/token"


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
