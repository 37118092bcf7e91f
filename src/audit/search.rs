//! Reading the trail back for admins: filtered, newest first, a page at a
//! time by id (keyset), so each read costs the same however long the log is.
//! Entry times rise with ids (`chain::append` sees to it), so a time range is
//! first turned into an id range through the index on `at`, and the page is
//! then read along the primary key or the case, actor or action index.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect};

use crate::{
    actor::Actor,
    db::entities::audit_entry,
    error::{AppError, AppResult},
};

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;
/// Most rows one CSV download holds; older matches are left out.
pub const EXPORT_MAX_ROWS: u64 = 100_000;
/// Rows read per query while exporting, so memory stays flat.
pub const EXPORT_BATCH: u64 = 500;

/// Which entries to show. Every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub case_id: Option<i32>,
    /// The acting user.
    pub user_id: Option<i32>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// One page of entries and where the next (older) one starts.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub items: Vec<audit_entry::Model>,
    /// Pass as `before_id` for the next page; `None` on the last page.
    pub next_before_id: Option<i32>,
}

/// Only admins read the trail: it names every patient anyone looked at.
pub fn ensure_admin(actor: &Actor) -> AppResult<()> {
    if actor.is_admin() { Ok(()) } else { Err(AppError::Forbidden("only admins can read the audit trail".into())) }
}

/// The ids a time range covers, found through the index on `at`; `None`
/// when no entry falls in it.
#[derive(Debug, Clone, Copy)]
struct IdRange {
    from: Option<i32>,
    to: Option<i32>,
}

async fn id_range(db: &DatabaseConnection, filter: &AuditFilter) -> AppResult<Option<IdRange>> {
    let edge = |cond: Condition, newest: bool| {
        let order = if newest { Order::Desc } else { Order::Asc };
        audit_entry::Entity::find()
            .select_only()
            .column(audit_entry::Column::Id)
            .filter(cond)
            .order_by(audit_entry::Column::At, order.clone())
            .order_by(audit_entry::Column::Id, order)
            .limit(1)
            .into_tuple::<i32>()
            .one(db)
    };
    let mut range = IdRange { from: None, to: None };
    if let Some(since) = filter.since {
        match edge(Condition::all().add(audit_entry::Column::At.gte(since)), false).await? {
            Some(id) => range.from = Some(id),
            None => return Ok(None),
        }
    }
    if let Some(until) = filter.until {
        match edge(Condition::all().add(audit_entry::Column::At.lt(until)), true).await? {
            Some(id) => range.to = Some(id),
            None => return Ok(None),
        }
    }
    Ok(Some(range))
}

impl AuditFilter {
    fn condition(&self, range: IdRange, before_id: Option<i32>) -> Condition {
        let mut cond = Condition::all();
        if let Some(id) = range.from {
            cond = cond.add(audit_entry::Column::Id.gte(id));
        }
        if let Some(id) = range.to {
            cond = cond.add(audit_entry::Column::Id.lte(id));
        }
        if let Some(id) = self.case_id {
            cond = cond.add(audit_entry::Column::CaseId.eq(id));
        }
        if let Some(id) = self.user_id {
            cond = cond.add(audit_entry::Column::ActorId.eq(id));
        }
        if let Some(action) = self.action.as_deref() {
            cond = cond.add(audit_entry::Column::Action.eq(action));
        }
        if let Some(since) = self.since {
            cond = cond.add(audit_entry::Column::At.gte(since));
        }
        if let Some(until) = self.until {
            cond = cond.add(audit_entry::Column::At.lt(until));
        }
        if let Some(id) = before_id {
            cond = cond.add(audit_entry::Column::Id.lt(id));
        }
        cond
    }
}

/// Entries matching `filter` older than `before_id`, newest first: at most
/// `limit`. Admins only.
pub async fn page(
    db: &DatabaseConnection,
    actor: &Actor,
    filter: &AuditFilter,
    before_id: Option<i32>,
    limit: u64,
) -> AppResult<AuditPage> {
    ensure_admin(actor)?;
    let limit = limit.clamp(1, MAX_LIMIT);
    let Some(range) = id_range(db, filter).await? else {
        return Ok(AuditPage { items: Vec::new(), next_before_id: None });
    };
    let mut items = batch(db, filter, range, before_id, limit + 1).await?;
    let more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    let next_before_id = if more { items.last().map(|e| e.id) } else { None };
    Ok(AuditPage { items, next_before_id })
}

async fn batch(
    db: &DatabaseConnection,
    filter: &AuditFilter,
    range: IdRange,
    before_id: Option<i32>,
    limit: u64,
) -> AppResult<Vec<audit_entry::Model>> {
    Ok(audit_entry::Entity::find()
        .filter(filter.condition(range, before_id))
        .order_by_desc(audit_entry::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Reads every match of `filter` (up to [`EXPORT_MAX_ROWS`]) a batch at a
/// time, newest first, for a download that is written as it is read.
pub struct Export {
    db: DatabaseConnection,
    filter: AuditFilter,
    /// Found on the first read; `None` until then.
    range: Option<Option<IdRange>>,
    before_id: Option<i32>,
    sent: u64,
    done: bool,
}

impl Export {
    /// Admins only.
    pub fn start(db: &DatabaseConnection, actor: &Actor, filter: AuditFilter) -> AppResult<Self> {
        ensure_admin(actor)?;
        Ok(Self { db: db.clone(), filter, range: None, before_id: None, sent: 0, done: false })
    }

    /// The next batch; empty once everything (or the cap) has been read.
    pub async fn next_batch(&mut self) -> AppResult<Vec<audit_entry::Model>> {
        let room = EXPORT_MAX_ROWS - self.sent;
        if self.done || room == 0 {
            return Ok(Vec::new());
        }
        let range = match self.range {
            Some(range) => range,
            None => *self.range.insert(id_range(&self.db, &self.filter).await?),
        };
        let Some(range) = range else {
            self.done = true;
            return Ok(Vec::new());
        };
        let rows = batch(&self.db, &self.filter, range, self.before_id, EXPORT_BATCH.min(room)).await?;
        if (rows.len() as u64) < EXPORT_BATCH.min(room) {
            self.done = true;
        }
        self.sent += rows.len() as u64;
        self.before_id = rows.last().map(|e| e.id).or(self.before_id);
        Ok(rows)
    }

    /// Whether the cap stopped the export before the filter's matches ran out.
    pub async fn was_capped(&self) -> AppResult<bool> {
        let Some(Some(range)) = self.range else { return Ok(false) };
        if self.sent < EXPORT_MAX_ROWS {
            return Ok(false);
        }
        Ok(!batch(&self.db, &self.filter, range, self.before_id, 1).await?.is_empty())
    }
}
