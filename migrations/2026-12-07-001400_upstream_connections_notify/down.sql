DROP TRIGGER upstream_connections_notify ON upstream_connections;
DROP FUNCTION upstream_connections_notify();
