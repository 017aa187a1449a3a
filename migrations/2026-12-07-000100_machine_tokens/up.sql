-- issue 13: a resource accepts tokens without a user (client_credentials) only when it says so
ALTER TABLE resources ADD COLUMN accept_machine_tokens boolean NOT NULL DEFAULT false;
