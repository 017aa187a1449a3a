//! `users`: local accounts (argon2id password hashes).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::users;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub disabled: bool,
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserRow {
    pub fn new(username: &str, password_hash: String, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            username: username.to_owned(),
            password_hash,
            disabled: false,
            failed_logins: 0,
            locked_until: None,
            created_at: now,
            updated_at: now,
        }
    }
}

pub async fn insert(conn: &mut AsyncPgConnection, row: &UserRow) -> QueryResult<()> {
    diesel::insert_into(users::table).values(row).execute(conn).await.map(drop)
}

pub async fn find_by_username(conn: &mut AsyncPgConnection, username: &str) -> QueryResult<Option<UserRow>> {
    users::table.filter(users::username.eq(username)).select(UserRow::as_select()).first(conn).await.optional()
}

pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<UserRow>> {
    users::table.find(id).select(UserRow::as_select()).first(conn).await.optional()
}

pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<UserRow>> {
    users::table.select(UserRow::as_select()).order(users::username.asc()).load(conn).await
}

pub async fn set_disabled(
    conn: &mut AsyncPgConnection,
    username: &str,
    disabled: bool,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(users::table.filter(users::username.eq(username)))
        .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

pub async fn set_password(
    conn: &mut AsyncPgConnection,
    username: &str,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(users::table.filter(users::username.eq(username)))
        .set((
            users::password_hash.eq(hash),
            users::failed_logins.eq(0),
            users::locked_until.eq(None::<DateTime<Utc>>),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// Counts a failed login; after `max_failures` in a row the user is locked until `lock_until`.
pub async fn record_failure(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    max_failures: i32,
    lock_until: DateTime<Utc>,
) -> QueryResult<()> {
    use diesel::dsl::case_when;
    diesel::update(users::table.find(id))
        .set((
            users::failed_logins.eq(users::failed_logins + 1),
            users::locked_until
                .eq(case_when(users::failed_logins.ge(max_failures - 1), Some(lock_until))
                    .otherwise(users::locked_until)),
        ))
        .execute(conn)
        .await
        .map(drop)
}

pub async fn reset_failures(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(users::table.find(id).filter(users::failed_logins.ne(0).or(users::locked_until.is_not_null())))
        .set((users::failed_logins.eq(0), users::locked_until.eq(None::<DateTime<Utc>>)))
        .execute(conn)
        .await
        .map(drop)
}
