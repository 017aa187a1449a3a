ALTER TABLE upstream_connects DROP COLUMN resource;
DELETE FROM upstream_clients WHERE method = 'configured';
ALTER TABLE upstream_clients
    DROP CONSTRAINT upstream_clients_method_check,
    ADD CONSTRAINT upstream_clients_method_check
        CHECK (method IN ('metadata_document', 'dynamic'));
