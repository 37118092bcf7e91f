//! Sessions kept in the database, so that any instance can serve any
//! request. Rows are keyed by a digest of the session id: a copy of the
//! table does not hand out working cookies.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::OnConflict};
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store::{Error, Result},
};

use crate::{db, db::entities::session, secrets::digest};

/// The session key holding the signed-in user's id.
pub const USER_KEY: &str = "user_id";

#[derive(Debug, Clone)]
pub struct DbSessionStore {
    db: DatabaseConnection,
    /// A session not saved for this long has ended.
    idle: time::Duration,
}

impl DbSessionStore {
    pub fn new(db: DatabaseConnection, idle: std::time::Duration) -> Self {
        Self { db, idle: time::Duration::try_from(idle).unwrap_or(time::Duration::minutes(30)) }
    }

    /// The row for `record`, ending `idle` after now: the cookie carries no
    /// expiry of its own, so the server decides when a session is over.
    fn row(&self, record: &Record) -> Result<session::ActiveModel> {
        let mut expiring = record.clone();
        expiring.expiry_date = time::OffsetDateTime::now_utc() + self.idle;
        row(&expiring)
    }

    pub async fn delete_expired(&self) -> std::result::Result<u64, sea_orm::DbErr> {
        let result =
            session::Entity::delete_many().filter(session::Column::ExpiresAt.lt(db::now())).exec(&self.db).await?;
        Ok(result.rows_affected)
    }

    async fn exists(&self, id: &Id) -> Result<bool> {
        let found = session::Entity::find_by_id(digest(&id.to_string())).one(&self.db).await.map_err(backend)?;
        Ok(found.is_some())
    }
}

fn backend(err: sea_orm::DbErr) -> Error {
    Error::Backend(err.to_string())
}

fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn to_time(t: DateTime<Utc>) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.timestamp())
        .map(|at| at + time::Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos())))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn row(record: &Record) -> Result<session::ActiveModel> {
    let data = serde_json::to_string(&record.data).map_err(|e| Error::Encode(e.to_string()))?;
    let user_id = record.data.get(USER_KEY).and_then(serde_json::Value::as_i64).and_then(|id| i32::try_from(id).ok());
    Ok(session::ActiveModel {
        id: Set(digest(&record.id.to_string())),
        user_id: Set(user_id),
        data: Set(data),
        expires_at: Set(to_chrono(record.expiry_date)),
    })
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        while self.exists(&record.id).await? {
            record.id = Id::default();
        }
        session::Entity::insert(self.row(record)?).exec(&self.db).await.map_err(backend)?;
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<()> {
        session::Entity::insert(self.row(record)?)
            .on_conflict(
                OnConflict::column(session::Column::Id)
                    .update_columns([session::Column::UserId, session::Column::Data, session::Column::ExpiresAt])
                    .to_owned(),
            )
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let found = session::Entity::find_by_id(digest(&id.to_string()))
            .filter(session::Column::ExpiresAt.gt(db::now()))
            .one(&self.db)
            .await
            .map_err(backend)?;
        let Some(found) = found else { return Ok(None) };
        let data = serde_json::from_str(&found.data).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Some(Record { id: *id, data, expiry_date: to_time(found.expires_at) }))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        session::Entity::delete_by_id(digest(&id.to_string())).exec(&self.db).await.map_err(backend)?;
        Ok(())
    }
}
