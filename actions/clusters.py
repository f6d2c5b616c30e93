"""Clusters API (2.1)."""
from __future__ import annotations

API = "/api/2.1/clusters"


def get_cluster(session, inputs):
    return session.get(f"{API}/get", {"cluster_id": inputs["cluster_id"]})


def list_clusters(session, inputs):
    params = {"page_size": 100}
    if inputs.get("states"):
        params["filter_by.cluster_states"] = list(inputs["states"])
    clusters, truncated = session.paginate(f"{API}/list", items="clusters", params=params,
                                           max_items=inputs.get("max_items"))
    return {"clusters": clusters, "count": len(clusters), "truncated": truncated}


def select_cluster(session, inputs):
    clusters, _ = session.paginate(f"{API}/list", items="clusters", params={"page_size": 100})
    return [{"label": f"{c.get('cluster_name') or c['cluster_id']} ({c.get('state', 'UNKNOWN')})", "value": c["cluster_id"]}
            for c in clusters]
