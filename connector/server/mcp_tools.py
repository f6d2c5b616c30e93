"""MCP (Streamable HTTP) at ``/mcp``: one tool per action, from the same spec, on the official SDK.

Each tool has the action's input schema, its output schema (structured content; an output that is
not a JSON object is wrapped as ``{"result": ...}`` because MCP before 2026-07-28 requires an
object there) and the manifest's annotations as MCP hints. The connection comes from the same
headers as the HTTP routes, and the server's API key guards the endpoint. The session manager
runs stateless with JSON answers, so any worker behind a load balancer can answer any request.

A call that would wait past the server's budget does not hold the client for an hour: it answers
with an error result naming an operation token, and the ``get_operation`` tool continues it.
"""
from __future__ import annotations

import contextlib
import json

from ..errors import ConnectorError
from .credentials import identity
from .operations import TokenRefused
from .surface import annotations, output_schema

OPERATION_TOOL = "get_operation"


def _is_object_schema(schema: dict) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "object"


def tool_schemas(action: dict) -> tuple[dict, dict | None, bool]:
    """(input schema, output schema or None, whether the output is wrapped in {"result": ...})."""
    inp = {k: v for k, v in action["input_schema"].items() if k != "$schema"}
    out = output_schema(action)
    if not out:
        return inp, None, False
    out = {k: v for k, v in out.items() if k != "$schema"}
    if _is_object_schema(out):
        return inp, out, False
    defs = out.pop("$defs", None)
    wrapped = {"type": "object", "properties": {"result": out}, "required": ["result"]}
    if defs:
        wrapped["$defs"] = defs     # its "#/$defs/..." references still resolve at the new root
    return inp, wrapped, True


class McpEndpoint:
    """The ASGI endpoint at /mcp: the API key check, then the SDK's Streamable HTTP manager."""

    def __init__(self, app):
        from mcp.server.lowlevel import Server
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.app = app
        self.tools, self.index = self._tools()
        connector = app.surface.connector
        self.server = Server(connector.get("key", "databricks"), version=str(connector.get("version", "")),
                             title=connector.get("label"), description=connector.get("description"),
                             instructions="Tools run Databricks actions on the workspace of the connection this "
                                          "client was configured with. Outputs are JSON; errors carry a hint.",
                             on_list_tools=self.list_tools, on_call_tool=self.call_tool)
        # The SDK's DNS-rebinding checks are the server-wide Guard's job (it knows --public-url).
        self.manager = StreamableHTTPSessionManager(app=self.server, stateless=True, json_response=True,
                                                    security_settings=None,
                                                    max_request_body_size=app.config.max_body)

    @contextlib.asynccontextmanager
    async def run(self):
        async with self.manager.run():
            yield

    async def __call__(self, scope, receive, send):
        from .app import error_response

        try:
            self.app.authorize({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])})
        except ConnectorError as err:
            return await error_response(err)(scope, receive, send)
        await self.manager.handle_request(scope, receive, send)

    # -- tools -----------------------------------------------------------------------------
    def _tools(self):
        import mcp_types as types

        tools, index = [], {}
        for key, action in self.app.surface.actions.items():
            inp, out, wrapped = tool_schemas(action)
            ann = annotations(action)
            hints = None
            if ann is not None:
                hints = types.ToolAnnotations(title=action.get("label"), read_only_hint=ann["read_only"],
                                              destructive_hint=ann["destructive"], idempotent_hint=ann["idempotent"],
                                              open_world_hint=ann["open_world"])
            tools.append(types.Tool(name=key, title=action.get("label"), description=action.get("description"),
                                    input_schema=inp, output_schema=out, annotations=hints))
            index[key] = wrapped
        if self.app.runtime.has_budget:
            tools.append(types.Tool(
                name=OPERATION_TOOL, title="Follow a long operation",
                description="Continue a step that was still running: pass the operation token its result named. "
                            "Answers the step's output when done, or the same kind of still-running result.",
                input_schema={"type": "object", "required": ["operation"], "additionalProperties": False,
                              "properties": {"operation": {"type": "string", "description": "The operation token."}}},
                annotations=types.ToolAnnotations(title="Follow a long operation", read_only_hint=True,
                                                  destructive_hint=False, idempotent_hint=True, open_world_hint=True)))
        return tools, index

    async def list_tools(self, ctx, params):
        import mcp_types as types

        return types.ListToolsResult(tools=self.tools)

    async def call_tool(self, ctx, params):
        import mcp_types as types

        name, args = params.name, dict(params.arguments or {})
        headers = getattr(getattr(ctx, "request", None), "headers", None) or {}
        app = self.app
        try:
            conn = app.connection(headers)
            if name == OPERATION_TOOL and app.runtime.has_budget:
                resume = app.signer.open(str(args.get("operation", "")), identity(conn))
                key = resume.get("action")
                if key not in app.surface.actions:
                    raise ConnectorError("permission_denied", "This operation's action is not exposed here")
                call = (app.runtime.resume, resume, conn, app.config.poll_budget)
            else:
                action = app.surface.actions.get(name)
                if action is None:
                    raise ConnectorError("not_found", f"Unknown tool {name!r}")
                app._refuse_local(action, args)
                key = name
                call = (app.runtime.run, name, conn, args, app.config.sync_budget)
            out = await app._thread(*call)
        except ConnectorError as err:
            return types.CallToolResult(content=[types.TextContent(text=json.dumps({"error": err.to_dict()}, default=str))],
                                        is_error=True)
        except Exception as exc:  # noqa: BLE001
            if app.runtime.Pending is not None and isinstance(exc, app.runtime.Pending):
                return self._pending(key, conn, exc)
            err = ConnectorError("internal", f"Unexpected {type(exc).__name__} in the server")
            return types.CallToolResult(content=[types.TextContent(text=json.dumps({"error": err.to_dict()}))], is_error=True)
        wrapped = self.index.get(key, False)
        structured = {"result": out} if wrapped or not isinstance(out, dict) else out
        text = json.dumps(out, ensure_ascii=False, default=str)
        return types.CallToolResult(content=[types.TextContent(text=text)], structured_content=structured)

    def _pending(self, key, conn, pending):
        import mcp_types as types

        from .app import _retry_after, _secret_values

        app = self.app
        try:
            token = app.signer.issue(pending.resume, identity(conn), _secret_values(conn, app.api_key))
        except TokenRefused as why:
            err = ConnectorError("timeout", f"The step is still running and cannot be followed from here ({why})",
                                 details={"started": getattr(pending, "resume", {}).get("started")})
            return types.CallToolResult(content=[types.TextContent(text=json.dumps({"error": err.to_dict()}, default=str))],
                                        is_error=True)
        retry = _retry_after(getattr(pending, "retry_after", None))
        doc = {"status": "running", "action": key, "operation": token, "retry_after": retry,
               "state": getattr(pending, "state", None),
               "next": f"Call the tool {OPERATION_TOOL} with operation set to this token in about {retry} seconds."}
        return types.CallToolResult(content=[types.TextContent(text=json.dumps(doc, default=str))], is_error=True)
