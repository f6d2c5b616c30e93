"""The official SDK drives clusters and command execution on the emulator, with its own waiters
and paging; every answer is then checked against the SDK's dataclasses (sdkcheck.py)."""
from datetime import timedelta

import pytest
from databricks.sdk.errors import DatabricksError, InvalidParameterValue, NotFound, OperationFailed
from databricks.sdk.service import compute

WAIT = timedelta(seconds=60)


@pytest.fixture(scope="module")
def spark_version(w):
    versions = w.clusters.spark_versions().versions
    assert versions and all(v.key and v.name for v in versions)
    return w.clusters.select_spark_version(latest=True, long_term_support=True)


@pytest.fixture(scope="module")
def node_type(w):
    return w.clusters.select_node_type(local_disk=True, min_memory_gb=16)


@pytest.fixture(scope="module")
def running(w, spark_version, node_type):
    """A cluster created by the SDK and brought to RUNNING by its own waiter."""
    seen = []
    details = w.clusters.create(cluster_name="sdk-conformance", spark_version=spark_version,
                                node_type_id=node_type, num_workers=1, autotermination_minutes=30,
                                custom_tags={"team": "sdk"}).result(timeout=WAIT, callback=seen.append)
    assert details.state == compute.State.RUNNING
    assert all(d.state == compute.State.PENDING for d in seen)  # what the waiter saw before RUNNING
    return details


def test_cluster_lifecycle(w, running, spark_version, node_type):
    cid = running.cluster_id
    got = w.clusters.get(cid)
    assert (got.cluster_name, got.spark_version, got.node_type_id, got.num_workers) == (
        "sdk-conformance", spark_version, node_type, 1)
    assert got.custom_tags == {"team": "sdk"} and got.creator_user_name
    assert got.cluster_source == compute.ClusterSource.API
    assert cid in [c.cluster_id for c in w.clusters.list()]
    assert w.clusters.list_zones().zones
    assert w.clusters.list_node_types().node_types

    w.clusters.pin(cid)
    w.clusters.unpin(cid)
    resized = w.clusters.resize(cid, num_workers=2).result(timeout=WAIT)
    assert resized.state == compute.State.RUNNING and resized.num_workers == 2
    restarted = w.clusters.restart(cid).result(timeout=WAIT)
    assert restarted.state == compute.State.RUNNING
    # the partial update (update_mask) of a running cluster restarts it; the SDK waits for RUNNING
    updated = w.clusters.update(cid, update_mask="autotermination_minutes,spark_conf", cluster=compute.UpdateClusterResource(
        autotermination_minutes=45, spark_conf={"spark.speculation": "true"})).result(timeout=WAIT)
    assert (updated.autotermination_minutes, updated.spark_conf) == (45, {"spark.speculation": "true"})
    assert updated.num_workers == 2 and updated.custom_tags == {"team": "sdk"}

    # events: the SDK pages through them itself (POST with next_page)
    events = list(w.clusters.events(cid, order=compute.GetEventsOrder.ASC, limit=2))
    kinds = [e.type for e in events]
    assert compute.EventType.CREATING in kinds and compute.EventType.RUNNING in kinds
    assert compute.EventType.RESIZING in kinds and compute.EventType.RESTARTING in kinds
    assert all(e.cluster_id == cid and e.timestamp for e in events)
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    pages = [a for a in w.recorder.answers if a["path"].endswith("/clusters/events")]
    assert len(pages) > 1 and all(b["body"] == a["answer"]["next_page"] for a, b in zip(pages, pages[1:]))
    assert "next_page" not in pages[-1]["answer"]

    # terminate (the SDK's delete) and its waiter, then start again, then the permanent delete
    stopped = w.clusters.delete(cid).result(timeout=WAIT)
    assert stopped.state == compute.State.TERMINATED and stopped.termination_reason.code
    assert w.clusters.start(cid).result(timeout=WAIT).state == compute.State.RUNNING
    w.clusters.delete(cid)  # TERMINATING: the SDK's helper waits for TERMINATED, then starts
    w.clusters.ensure_cluster_is_running(cid)
    assert w.clusters.get(cid).state == compute.State.RUNNING
    w.clusters.delete_and_wait(cid, timeout=WAIT)
    w.clusters.permanent_delete(cid)
    with pytest.raises((InvalidParameterValue, NotFound), match="does not exist"):
        w.clusters.get(cid)
    assert w.recorder.check() > 10


def test_cluster_edit_of_a_terminated_cluster(w, spark_version, node_type):
    created = w.clusters.create_and_wait(cluster_name="sdk-edit", spark_version=spark_version,
                                         node_type_id=node_type, num_workers=1, timeout=WAIT)
    w.clusters.delete_and_wait(created.cluster_id, timeout=WAIT)
    w.clusters.edit(created.cluster_id, spark_version=spark_version, cluster_name="sdk-edited",
                    node_type_id=node_type, num_workers=3)
    got = w.clusters.get(created.cluster_id)
    assert (got.cluster_name, got.num_workers, got.state) == ("sdk-edited", 3, compute.State.TERMINATED)
    w.clusters.permanent_delete(created.cluster_id)
    w.recorder.check()


def test_the_waiter_reports_a_launch_failure(w, knobs, spark_version, node_type):
    knobs({"cluster_launch_failure": "CLOUD_PROVIDER_LAUNCH_FAILURE"})
    with pytest.raises(OperationFailed, match="TERMINATED"):
        w.clusters.create_and_wait(cluster_name="sdk-doomed", spark_version=spark_version,
                                   node_type_id=node_type, num_workers=1, timeout=WAIT)
    doomed = [c for c in w.clusters.list() if c.cluster_name == "sdk-doomed"]
    assert doomed and doomed[0].termination_reason.code == compute.TerminationReasonCode.CLOUD_PROVIDER_LAUNCH_FAILURE
    w.recorder.check()


def test_commands_context_execute_wait_cancel(w, spark_version, node_type):
    cid = w.clusters.create_and_wait(cluster_name="sdk-commands", spark_version=spark_version,
                                     node_type_id=node_type, num_workers=0, timeout=WAIT).cluster_id
    ctx = w.command_execution.create(cluster_id=cid, language=compute.Language.PYTHON).result(timeout=WAIT)
    assert ctx.status == compute.ContextStatus.RUNNING and ctx.id
    done = w.command_execution.execute(cluster_id=cid, context_id=ctx.id, language=compute.Language.PYTHON,
                                       command="x = 6 * 7\nprint(x)").result(timeout=WAIT)
    assert done.status == compute.CommandStatus.FINISHED
    assert done.results.result_type == compute.ResultType.TEXT and done.results.data.strip() == "42"
    # state is kept between commands of one context
    again = w.command_execution.execute_and_wait(cluster_id=cid, context_id=ctx.id,
                                                 language=compute.Language.PYTHON, command="print(x + 1)",
                                                 timeout=WAIT)
    assert again.results.data.strip() == "43"
    failed = w.command_execution.execute_and_wait(cluster_id=cid, context_id=ctx.id,
                                                  language=compute.Language.PYTHON, command="1/0", timeout=WAIT)
    assert failed.status == compute.CommandStatus.FINISHED and failed.results.result_type == compute.ResultType.ERROR
    assert "ZeroDivisionError" in (failed.results.cause or "") + (failed.results.summary or "")

    slow = w.command_execution.execute(cluster_id=cid, context_id=ctx.id, language=compute.Language.PYTHON,
                                       command="import time\ntime.sleep(30)")
    cancelled = w.command_execution.cancel(cluster_id=cid, context_id=ctx.id,
                                           command_id=slow.command_id).result(timeout=WAIT)
    assert cancelled.status == compute.CommandStatus.CANCELLED
    status = w.command_execution.context_status(cluster_id=cid, context_id=ctx.id)
    assert status.status == compute.ContextStatus.RUNNING
    w.command_execution.destroy(cluster_id=cid, context_id=ctx.id)
    with pytest.raises(DatabricksError) as bad:
        w.command_execution.command_status(cluster_id=cid, context_id=ctx.id, command_id=slow.command_id)
    assert bad.value.args[0]  # the 1.2 {"error": ...} body reaches the SDK's message

    sql_ctx = w.command_execution.create_and_wait(cluster_id=cid, language=compute.Language.SQL, timeout=WAIT)
    table = w.command_execution.execute_and_wait(cluster_id=cid, context_id=sql_ctx.id, language=compute.Language.SQL,
                                                 command="SELECT 1 AS a, 'x' AS b", timeout=WAIT)
    assert table.results.result_type == compute.ResultType.TABLE
    assert table.results.data == [[1, "x"]] and [c["name"] for c in table.results.schema] == ["a", "b"]
    w.command_execution.destroy(cluster_id=cid, context_id=sql_ctx.id)
    w.clusters.permanent_delete(cid)
    assert w.recorder.check() > 5


def test_list_pages_and_retries(w, emu, knobs, spark_version, node_type):
    """The SDK follows clusters/list's page tokens, and retries a 429 and a 503 by itself."""
    made = [w.clusters.create(cluster_name=f"sdk-list-{i}", spark_version=spark_version, node_type_id=node_type,
                              num_workers=0).cluster_id for i in range(3)]
    names = {c.cluster_name for c in w.clusters.list()}
    assert names >= {"sdk-list-0", "sdk-list-1", "sdk-list-2"}
    pages_before = len([a for a in w.recorder.answers if a["path"].endswith("/clusters/list")])
    paged = list(w.clusters.list(page_size=1))
    pages = [a for a in w.recorder.answers if a["path"].endswith("/clusters/list")][pages_before:]
    assert {c.cluster_name for c in paged} == names and len(pages) >= len(names) >= 2
    assert [c.cluster_id for c in paged] == list(dict.fromkeys(c.cluster_id for c in paged))  # no repeats

    emu.faults.add("/api/2.1/clusters/get", "429", times=1, retry_after=0)
    emu.faults.add("/api/2.1/clusters/get", "503", times=1)
    calls = emu.count("GET", "/api/2.1/clusters/get")
    assert w.clusters.get(made[0]).cluster_id == made[0]
    assert emu.count("GET", "/api/2.1/clusters/get") - calls == 3
    for cid in made:
        w.clusters.permanent_delete(cid)
    w.recorder.check()


@pytest.mark.parametrize("cloud", ["AZURE", "GCP"])
def test_other_clouds_attributes_and_catalogues(w, knobs, cloud):
    """Each cloud's node types, zones and default cluster attributes parse into the SDK's models."""
    knobs({"cloud": cloud})
    node_type = w.clusters.select_node_type(min_memory_gb=16)  # GCP's types have no local disks
    cid = w.clusters.create(cluster_name=f"sdk-{cloud}", num_workers=0, node_type_id=node_type,
                            spark_version=w.clusters.select_spark_version(latest=True)).cluster_id
    got = w.clusters.get(cid)
    assert (got.azure_attributes if cloud == "AZURE" else got.gcp_attributes) is not None
    assert got.aws_attributes is None
    w.clusters.list_zones()
    w.clusters.permanent_delete(cid)
    assert w.recorder.check() >= 4
