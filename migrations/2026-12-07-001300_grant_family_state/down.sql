ALTER TABLE grant_families DROP COLUMN revoked_at, DROP COLUMN user_disabled;
