ALTER TABLE resources DROP COLUMN accept_machine_tokens;
