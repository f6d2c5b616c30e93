"""Microsoft Entra ID service principal for Azure Databricks (the SDK's ``azure-client-secret``).

The token comes from the Microsoft identity platform: ``POST https://<authority host>/<tenant
id>/oauth2/token`` with the client id and secret in the form body and
``resource=2ff814a6-3304-4ab8-85cb-cd0e6f879c1d`` (the Azure Databricks first-party application),
as the Databricks SDK asks for it. requests-oauthlib (``OAuth2Session`` with
``BackendApplicationClient``) builds and parses it; it goes out through the shared session.

A service principal that is not yet a user of the workspace can still be let in when it has the
Contributor or Owner role on the workspace's Azure resource: give the workspace's Azure resource
ID and each request also carries ``X-Databricks-Azure-Workspace-Resource-Id`` and
``X-Databricks-Azure-SP-Management-Token`` (a second token, for the Azure management endpoint of
the same cloud).

The authority host is ``login.microsoftonline.com`` (Azure public cloud),
``login.microsoftonline.us`` (US Government) or ``login.chinacloudapi.cn`` (China); it can be any
https host (http only on loopback, for the emulator), checked like a workspace host.
"""
from __future__ import annotations

import re

from ..errors import ConnectorError
from .hosts import normalize_host, split_url
from .oauth import CachedToken, TokenAuth, check_token, egress, parse, plain, raise_for_token_error
from .service_principal import empty_error, missing

AUTH_TYPE = "azure-client-secret"
AZURE_DATABRICKS = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
AUTHORITY = "login.microsoftonline.com"
# Authority host -> the Azure service management endpoint of the same cloud (the SDK's environments)
MANAGEMENT = {"login.microsoftonline.us": "https://management.core.usgovcloudapi.net/",
              "login.chinacloudapi.cn": "https://management.core.chinacloudapi.cn/"}
PUBLIC_MANAGEMENT = "https://management.core.windows.net/"
ENVIRONMENTS = {"PUBLIC": AUTHORITY, "USGOVERNMENT": "login.microsoftonline.us", "CHINA": "login.chinacloudapi.cn"}
HINT = ("Check the Tenant ID, Client ID and Client Secret of the Microsoft Entra ID application, and that the "
        "secret has not expired.")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,254}$")
_RESOURCE_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Databricks/workspaces/[^/]+$", re.I)


class EntraServicePrincipal(TokenAuth):
    auth_type = AUTH_TYPE

    def __init__(self, token_url: str, client_id: str, client_secret: str, resource_id: str | None,
                 management_resource: str):
        super().__init__()
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.resource_id = resource_id
        self.cache = CachedToken(lambda: self._fetch(AZURE_DATABRICKS))
        self.management = CachedToken(lambda: self._fetch(management_resource)) if resource_id else None

    def extra_headers(self) -> dict:
        if self.management is None:
            return {}
        return {"X-Databricks-Azure-Workspace-Resource-Id": self.resource_id,
                "X-Databricks-Azure-SP-Management-Token": self.management.get(self._deadline())}

    def rejected(self, request) -> bool:
        if self.management is not None:
            self.management.drop(request.headers.get("X-Databricks-Azure-SP-Management-Token"))
        return super().rejected(request)

    def own_secrets(self) -> list[str]:
        return [self._secret, *(self.management.secrets() if self.management else [])]

    def __repr__(self) -> str:
        return f"EntraServicePrincipal(token_url={self.token_url!r}, client_id={self.client_id!r}, client_secret=****)"

    def _fetch(self, resource: str):
        from oauthlib.oauth2 import BackendApplicationClient

        session = egress(self.post, BackendApplicationClient(client_id=self.client_id))
        session.register_compliance_hook("access_token_response",
                                         lambda r: raise_for_token_error(r, hint_credentials=HINT))
        url = plain(session, self.token_url)
        token = parse(session, lambda: session.fetch_token(url, include_client_id=True, client_secret=self._secret,
                                                           resource=resource))
        return check_token(token)


def build(fields: dict):
    host = normalize_host(fields.get("host", ""))
    labels = missing(fields, ("Tenant ID", "tenant_id"), ("Client ID", "client_id"), ("Client Secret", "client_secret"))
    if labels:
        raise empty_error(labels, "Copy them from the application's Overview and Certificates & secrets pages in the "
                                  "Microsoft Entra admin center.")
    tenant = fields["tenant_id"].strip()
    if not _TENANT.match(tenant):
        raise ConnectorError("configuration", "Tenant ID must be a directory (tenant) ID or domain such as "
                             "contoso.onmicrosoft.com", hint="Copy the Directory (tenant) ID from the application's Overview page.")
    authority = normalize_host(fields.get("authority_host") or AUTHORITY, "Authority Host")
    resource_id = fields.get("workspace_resource_id") or None
    if resource_id is not None and (not isinstance(resource_id, str) or not _RESOURCE_ID.match(resource_id.strip())):
        raise ConnectorError("configuration", "Workspace Resource ID must look like /subscriptions/<id>/resourceGroups/"
                             "<group>/providers/Microsoft.Databricks/workspaces/<name>",
                             hint="Copy it from the workspace's Properties page in the Azure portal, or leave it empty.")
    management = MANAGEMENT.get(split_url(authority)[1], PUBLIC_MANAGEMENT)
    auth = EntraServicePrincipal(f"{authority}/{tenant}/oauth2/token", fields["client_id"].strip(),
                                 fields["client_secret"].strip(), resource_id.strip() if resource_id else None, management)
    return host, auth, None
