INSERT INTO audit_events (id, occurred_at, kind, client_id, user_id, ip, detail) OVERRIDING SYSTEM VALUE
SELECT id, occurred_at, 'mcp.tool_call', client_id, user_id, ip,
       jsonb_build_object('route', route, 'tool', tool,
                          'subject', coalesce(subject, user_id::text, client_id),
                          'decision', CASE WHEN allowed THEN 'allowed' ELSE 'denied' END,
                          'reason', reason, 'upstream_status', upstream_status, 'duration_ms', duration_ms)
FROM tool_calls;
DROP TABLE tool_calls;
