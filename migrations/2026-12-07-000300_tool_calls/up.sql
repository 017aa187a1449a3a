-- issue 15: tool calls get a narrow table of their own. The gateway writes one row per
-- `tools/call` (thousands a second under load), so the insert path carries typed columns instead
-- of jsonb, the primary key, a BRIN index on time (a few pages, for --since and retention) and a
-- B-tree on the tool (deduplicated: a few distinct names cost little). Ids come from the sequence
-- of audit_events, so `sallyport audit list` orders both tables as one log.
CREATE TABLE tool_calls (
    id               bigint PRIMARY KEY DEFAULT nextval('audit_events_id_seq'),
    occurred_at      timestamptz NOT NULL,
    -- `sub` when it is neither the user id nor the client id (otherwise it is one of them)
    subject          text,
    user_id          uuid,
    client_id        text,
    ip               text,
    route            text NOT NULL,
    tool             text NOT NULL,
    allowed          boolean NOT NULL,
    reason           text,
    upstream_status  smallint,
    duration_ms      integer NOT NULL
);
CREATE INDEX tool_calls_occurred_at_brin ON tool_calls USING brin (occurred_at);
CREATE INDEX tool_calls_tool_idx ON tool_calls (tool);

INSERT INTO tool_calls (id, occurred_at, subject, user_id, client_id, ip, route, tool, allowed, reason,
                        upstream_status, duration_ms)
SELECT id, occurred_at,
       CASE WHEN detail->>'subject' IS DISTINCT FROM user_id::text
             AND detail->>'subject' IS DISTINCT FROM client_id THEN detail->>'subject' END,
       user_id, client_id, ip,
       coalesce(detail->>'route', ''), coalesce(detail->>'tool', ''),
       coalesce(detail->>'decision' = 'allowed', false), detail->>'reason',
       (detail->>'upstream_status')::smallint, coalesce((detail->>'duration_ms')::integer, 0)
FROM audit_events WHERE kind = 'mcp.tool_call';
DELETE FROM audit_events WHERE kind = 'mcp.tool_call';
