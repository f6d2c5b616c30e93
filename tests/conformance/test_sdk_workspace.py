"""The official SDK drives the Workspace API, permissions, the current user (SCIM) and OAuth M2M
(its own client-credentials flow, endpoints discovered from the emulator) on the emulator."""
import base64
import io

import pytest
import requests
from databricks.sdk.errors import NotFound, PermissionDenied, ResourceAlreadyExists
from databricks.sdk.service import compute, iam, jobs, sql, workspace

from .sdkcheck import workspace_client as client


@pytest.fixture(scope="module")
def me(w):
    return w.current_user.me()


def test_current_user_is_a_scim_user(w, me):
    assert me.user_name == "emulator-user@example.com" and me.active and me.id
    assert iam.UserSchema.URN_IETF_PARAMS_SCIM_SCHEMAS_CORE_2_0_USER in me.schemas
    assert me.emails and me.emails[0].value == me.user_name
    assert {g.display for g in me.groups} >= {"users", "admins"}
    assert all(g.ref and g.ref.startswith("Groups/") for g in me.groups)  # "$ref" on the wire
    assert w.recorder.check() >= 1


def test_workspace_tree(w, me):
    home = f"/Users/{me.user_name}/sdk-tree"
    w.workspace.mkdirs(f"{home}/sub")
    src = "# Databricks notebook source\nprint('hi')\n"
    w.workspace.import_(f"{home}/nb", content=base64.b64encode(src.encode()).decode(),
                        format=workspace.ImportFormat.SOURCE, language=workspace.Language.PYTHON)
    with pytest.raises(ResourceAlreadyExists):
        w.workspace.import_(f"{home}/nb", content=base64.b64encode(src.encode()).decode(),
                            format=workspace.ImportFormat.SOURCE, language=workspace.Language.PYTHON)
    # the SDK's multipart upload and raw download (a file, then a notebook's source)
    w.workspace.upload(f"{home}/sub/data.txt", io.BytesIO(b"a,b\n1,2\n"), format=workspace.ImportFormat.AUTO)
    with w.workspace.download(f"{home}/sub/data.txt") as f:
        assert f.read() == b"a,b\n1,2\n"
    exported = w.workspace.export(f"{home}/nb", format=workspace.ExportFormat.SOURCE)
    assert "print('hi')" in base64.b64decode(exported.content).decode()

    nb = w.workspace.get_status(f"{home}/nb")
    assert (nb.object_type, nb.language, nb.path) == (workspace.ObjectType.NOTEBOOK, workspace.Language.PYTHON,
                                                      f"{home}/nb")
    assert nb.object_id and nb.created_at and nb.modified_at
    top = {o.path: o.object_type for o in w.workspace.list(home)}
    assert top == {f"{home}/nb": workspace.ObjectType.NOTEBOOK, f"{home}/sub": workspace.ObjectType.DIRECTORY}
    everything = {o.path for o in w.workspace.list(home, recursive=True)}
    assert f"{home}/sub/data.txt" in everything
    with pytest.raises(NotFound):
        w.workspace.get_status(f"{home}/missing")
    with pytest.raises(PermissionDenied):
        w.workspace.delete("/Shared")
    w.workspace.delete(home, recursive=True)
    with pytest.raises(NotFound):
        w.workspace.get_status(home)
    assert w.recorder.check() >= 8


def test_permissions_of_each_object_type(w, emu, me):
    app_id, _secret = emu.add_service_principal("sdk-perms")
    cluster = w.clusters.create(cluster_name="sdk-perms", num_workers=0,
                                spark_version=w.clusters.select_spark_version(latest=True),
                                node_type_id=w.clusters.select_node_type(local_disk=True)).response.cluster_id
    cp = w.clusters.get_permissions(cluster)
    assert cp.object_id == f"/clusters/{cluster}" and cp.object_type == "cluster"
    levels = [lv.permission_level for lv in w.clusters.get_permission_levels(cluster).permission_levels]
    assert compute.ClusterPermissionLevel.CAN_RESTART in levels
    cp = w.clusters.update_permissions(cluster, access_control_list=[compute.ClusterAccessControlRequest(
        service_principal_name=app_id, permission_level=compute.ClusterPermissionLevel.CAN_ATTACH_TO)])
    assert any(a.service_principal_name == app_id for a in cp.access_control_list)
    cp = w.clusters.set_permissions(cluster, access_control_list=[])
    assert not any(a.service_principal_name == app_id for a in cp.access_control_list)

    job = w.jobs.create(name="sdk-perms").job_id
    jp = w.jobs.get_permissions(str(job))
    owner = [a for a in jp.access_control_list if a.user_name == me.user_name]
    assert owner and owner[0].all_permissions[0].permission_level == jobs.JobPermissionLevel.IS_OWNER
    jp = w.jobs.update_permissions(str(job), access_control_list=[jobs.JobAccessControlRequest(
        group_name="users", permission_level=jobs.JobPermissionLevel.CAN_VIEW)])
    assert any(a.group_name == "users" for a in jp.access_control_list)
    assert w.jobs.get_permission_levels(str(job)).permission_levels

    wh = next(iter(w.warehouses.list())).id
    assert w.warehouses.get_permissions(wh).access_control_list
    assert w.warehouses.get_permission_levels(wh).permission_levels
    wp = w.warehouses.update_permissions(wh, access_control_list=[sql.WarehouseAccessControlRequest(
        group_name="users", permission_level=sql.WarehousePermissionLevel.CAN_USE)])
    assert any(a.group_name == "users" for a in wp.access_control_list)

    folder = f"/Users/{me.user_name}/sdk-perms"
    w.workspace.mkdirs(folder)
    oid = str(w.workspace.get_status(folder).object_id)
    dp = w.workspace.set_permissions("directories", oid, access_control_list=[
        workspace.WorkspaceObjectAccessControlRequest(
            group_name="users", permission_level=workspace.WorkspaceObjectPermissionLevel.CAN_READ)])
    assert any(a.group_name == "users" for a in dp.access_control_list)
    assert w.workspace.get_permission_levels("directories", oid).permission_levels
    # the generic Permissions API reads the same objects
    generic = w.permissions.get("directories", oid)
    assert generic.object_id == dp.object_id
    w.workspace.delete(folder)
    w.jobs.delete(job)
    w.clusters.permanent_delete(cluster)
    assert w.recorder.check() >= 14


def test_oauth_m2m_with_the_sdk_client_credentials_flow(emu, knobs):
    before = emu.token_fetches
    m2m = client(emu, client_id=emu.client_id, client_secret=emu.client_secret, auth_type="oauth-m2m")
    who = m2m.current_user.me()
    assert who.user_name == emu.client_id or who.user_name.lower() == emu.client_id.lower()
    assert list(m2m.clusters.list()) is not None and m2m.clusters.spark_versions().versions
    # the SDK fetched one token from the emulator's token endpoint and reused it
    assert emu.token_fetches - before == 1
    # host metadata (/.well-known/databricks-config) was understood: ids and the OIDC root resolved
    assert m2m.config.workspace_id == str(emu.workspace_id)
    assert m2m.config.account_id == emu.account_id
    assert m2m.config.databricks_oidc_endpoints.token_endpoint == emu.token_url
    assert m2m.recorder.check() >= 3

    # a token within 40 s of its expiry is expired to the SDK: it fetches a new one for each call
    knobs({"token_lifetime": 30})
    short = client(emu, client_id=emu.client_id, client_secret=emu.client_secret, auth_type="oauth-m2m")
    before = emu.token_fetches
    for _ in range(3):
        assert short.current_user.me().user_name == who.user_name
    assert emu.token_fetches - before == 3

    bad = client(emu, client_id=emu.client_id, client_secret="wrong", auth_type="oauth-m2m")
    with pytest.raises(Exception, match="(?i)invalid|unauthori|401"):
        bad.current_user.me()


def test_discovery_and_token_answers_match_the_sdk(emu):
    """The answers the SDK's auth reads outside ApiClient: host metadata, OIDC endpoints, token."""
    from databricks.sdk.oauth import HostMetadata, OidcEndpoints

    verify = emu.ca_bundle or True
    meta = requests.get(f"{emu.url}/.well-known/databricks-config", verify=verify, timeout=10).json()
    parsed = HostMetadata.from_dict(meta)
    assert parsed.oidc_endpoint and parsed.cloud is not None
    assert {k: v for k, v in parsed.as_dict().items() if v is not None} == meta
    oidc = requests.get(f"{emu.url}/oidc/.well-known/oauth-authorization-server", verify=verify, timeout=10).json()
    endpoints = OidcEndpoints.from_dict(oidc)
    assert endpoints.token_endpoint == emu.token_url and endpoints.authorization_endpoint
    tok = requests.post(emu.token_url, data={"grant_type": "client_credentials", "scope": "all-apis"},
                        auth=(emu.client_id, emu.client_secret), verify=verify, timeout=10).json()
    assert isinstance(tok["access_token"], str) and tok["token_type"].lower() == "bearer"
    assert isinstance(tok["expires_in"], int) and tok["expires_in"] > 0


def test_errors_reach_the_sdks_exception_classes(w, emu):
    """The emulator's error bodies make the SDK raise the class a user catches on Databricks."""
    from databricks.sdk import errors as E

    cases = [
        (lambda: w.clusters.get("0000-000000-nothere0"), E.ResourceDoesNotExist, "does not exist"),
        (lambda: w.jobs.get(1), E.ResourceDoesNotExist, "does not exist"),
        (lambda: w.jobs.get_run(1), E.ResourceDoesNotExist, "does not exist"),
        (lambda: w.warehouses.get("0000000000000000"), E.ResourceDoesNotExist, "does not exist"),
        (lambda: w.workspace.get_status("/no/such/path"), E.ResourceDoesNotExist, "doesn't exist"),
        (lambda: w.statement_execution.get_statement("01ef0000-0000-0000-0000-000000000000"), E.NotFound, "not found"),
        (lambda: w.permissions.get("clusters", "0000-000000-nothere0"), E.ResourceDoesNotExist, "does not exist"),
        (lambda: w.clusters.create(spark_version="no-such-version", num_workers=0), E.InvalidParameterValue,
         "spark version"),
        (lambda: w.command_execution.context_status(cluster_id="0000-000000-nothere0", context_id="1"),
         E.InvalidParameterValue, "does not exist"),
        (lambda: client(emu, token="dapi-not-a-token", auth_type="pat").current_user.me(), E.PermissionDenied,
         "Invalid access token"),
    ]
    for call, cls, text in cases:
        with pytest.raises(cls, match=f"(?i){text}") as caught:
            call()
        assert caught.value.error_code and str(caught.value)
