-- issue 20: every gateway caches users' unsealed upstream tokens; a Disconnect (the row deleted),
-- an operator's `connection revoke`, a reconnect or another gateway's refresh (the row updated)
-- tells them at once, so the next request is not served with a token the user took back.
-- The payload names the row; `generation` is null for a delete (the entry goes whatever it holds).
CREATE FUNCTION upstream_connections_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('upstream_connections', json_build_object(
        'user_id', OLD.user_id,
        'route', OLD.route,
        'generation', CASE WHEN TG_OP = 'UPDATE' THEN NEW.generation END
    )::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER upstream_connections_notify
    AFTER UPDATE OR DELETE ON upstream_connections
    FOR EACH ROW EXECUTE FUNCTION upstream_connections_notify();
