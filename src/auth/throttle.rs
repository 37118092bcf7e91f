//! Slows down and then refuses repeated failed sign-ins, per account and per
//! client address. Counts live in the database so every instance sees them.
//!
//! An attempt is counted *before* its password is checked, in one atomic
//! step that also decides whether it may be checked at all; a correct
//! password then clears (account) or gives back (address) its count. So a
//! parallel burst cannot slip guesses in between a check and its count: after
//! `lock_after` attempts no further password is looked at, on any instance.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Statement, sea_query::OnConflict,
};

use crate::{
    config::WebSettings,
    db::{self, entities::sign_in_failure},
    error::AppResult,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub slow_down_after: i32,
    pub lock_after: i32,
    /// How long a lock lasts, and how long failures are remembered.
    pub window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: i32,
    pub first_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password, after waiting this long.
    Allow {
        delay: std::time::Duration,
    },
    Refuse {
        until: DateTime<Utc>,
    },
}

impl Failures {
    /// The record if it still counts at `now`: a lock not yet over, or
    /// failures inside the window.
    fn current(record: Option<Failures>, policy: &Policy, now: DateTime<Utc>) -> Option<Failures> {
        record.filter(|f| f.locked_until.is_some_and(|until| until > now) || f.first_at + policy.window > now)
    }

    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

/// Counts one more attempt and says whether its password may be checked.
/// A locked key is refused and left as it is; otherwise the attempt is
/// counted, the key locks when the count reaches `lock_after` (this last
/// attempt is still checked), and attempts past `slow_down_after` wait.
pub fn claim(record: Option<Failures>, policy: &Policy, now: DateTime<Utc>) -> (Option<Failures>, Verdict) {
    let current = Failures::current(record, policy, now);
    if let Some(until) = current.and_then(|f| f.locked_until).filter(|until| *until > now) {
        return (current, Verdict::Refuse { until });
    }
    let mut next = current.unwrap_or(Failures { count: 0, first_at: now, locked_until: None });
    let earlier = next.count;
    next.count += 1;
    if next.count >= policy.lock_after {
        next.locked_until = Some(now + policy.window);
    }
    let over = earlier - policy.slow_down_after;
    let delay = if over < 0 { 0 } else { 1u64 << over.min(2) };
    (Some(next), Verdict::Allow { delay: std::time::Duration::from_secs(delay) })
}

/// Gives back one counted attempt whose password was right, lifting a lock
/// that attempt alone brought about.
pub fn give_back(record: Option<Failures>, policy: &Policy, now: DateTime<Utc>) -> Option<Failures> {
    let mut f = Failures::current(record, policy, now)?;
    f.count = (f.count - 1).max(0);
    if f.count < policy.lock_after {
        f.locked_until = None;
    }
    Some(f)
}

/// Keyed by a digest of the typed email: what people type into the email
/// box (typos, other people's addresses, passwords) is not kept as it was typed.
/// Whole minutes until a lock ends, rounded up, for telling people how long to wait.
pub fn minutes_left(until: DateTime<Utc>) -> i64 {
    (until - db::now()).num_minutes() + 1
}

pub fn account_key(email: &str) -> String {
    format!("account:{}", crate::auth::tokens::digest(&email.trim().to_lowercase()))
}

pub fn address_key(ip: &str) -> String {
    format!("address:{ip}")
}

pub fn policies(settings: &WebSettings) -> (Policy, Policy) {
    let window = Duration::from_std(settings.lockout).unwrap_or(Duration::minutes(15));
    let slow = i32::try_from(settings.slow_down_after).unwrap_or(i32::MAX);
    let account = i32::try_from(settings.account_lockout_after).unwrap_or(i32::MAX);
    let address = i32::try_from(settings.address_lockout_after).unwrap_or(i32::MAX);
    (
        Policy { slow_down_after: slow, lock_after: account, window },
        Policy { slow_down_after: slow.max(address / 2), lock_after: address, window },
    )
}

/// Counts an attempt on `key` (see [`claim`]), atomically across instances.
pub async fn claim_attempt(db: &DatabaseConnection, key: &str, policy: &Policy) -> AppResult<(Verdict, Failures)> {
    let now = db::now();
    let mut verdict = Verdict::Allow { delay: std::time::Duration::ZERO };
    let after = update(db, key, |before| {
        let (after, decided) = claim(before, policy, now);
        verdict = decided;
        after
    })
    .await?;
    Ok((verdict, after.unwrap_or(Failures { count: 0, first_at: now, locked_until: None })))
}

/// A correct password on an account: its count starts again.
pub async fn clear(db: &DatabaseConnection, key: &str) -> AppResult<()> {
    sign_in_failure::Entity::delete_by_id(key.to_string()).exec(db).await?;
    Ok(())
}

/// A correct password from an address: that attempt no longer counts.
pub async fn give_back_attempt(db: &DatabaseConnection, key: &str, policy: &Policy) -> AppResult<()> {
    let now = db::now();
    update(db, key, |before| give_back(before, policy, now)).await?;
    Ok(())
}

/// Reads, changes and writes one key's record as a single step: SQLite's
/// write transactions already run one at a time; PostgreSQL takes an
/// advisory lock on the key for the length of the transaction.
async fn update(
    db: &DatabaseConnection,
    key: &str,
    change: impl FnOnce(Option<Failures>) -> Option<Failures>,
) -> AppResult<Option<Failures>> {
    let txn = db::begin_write(db).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [THROTTLE_LOCK_SPACE.into(), key.into()],
        ))
        .await?;
    }
    let before = sign_in_failure::Entity::find_by_id(key.to_string()).one(&txn).await?.map(|r| Failures {
        count: r.failures,
        first_at: r.first_failure_at,
        locked_until: r.locked_until,
    });
    let after = change(before);
    match after {
        Some(next) if next.count > 0 || next.is_locked(db::now()) => {
            let row = sign_in_failure::ActiveModel {
                key: Set(key.to_string()),
                failures: Set(next.count),
                first_failure_at: Set(next.first_at),
                locked_until: Set(next.locked_until),
            };
            sign_in_failure::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(sign_in_failure::Column::Key)
                        .update_columns([
                            sign_in_failure::Column::Failures,
                            sign_in_failure::Column::FirstFailureAt,
                            sign_in_failure::Column::LockedUntil,
                        ])
                        .to_owned(),
                )
                .exec(&txn)
                .await?;
        }
        _ if before.is_some() => {
            sign_in_failure::Entity::delete_by_id(key.to_string()).exec(&txn).await?;
        }
        _ => {}
    }
    txn.commit().await?;
    Ok(after)
}

/// First key of the PostgreSQL advisory locks taken per throttled key (the
/// second is a hash of the key).
const THROTTLE_LOCK_SPACE: i32 = 0x534c_5448;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).single().expect("valid time")
    }

    const POLICY: Policy = Policy { slow_down_after: 3, lock_after: 5, window: Duration::minutes(15) };

    fn attempts(record: &mut Option<Failures>, n: usize, at: DateTime<Utc>) -> Vec<Verdict> {
        (0..n)
            .map(|_| {
                let (next, verdict) = claim(*record, &POLICY, at);
                *record = next;
                verdict
            })
            .collect()
    }

    #[test]
    fn attempts_slow_down_then_lock_then_are_forgotten() {
        let mut record = None;
        let verdicts = attempts(&mut record, 6, now());
        let delays: Vec<u64> = verdicts[..5]
            .iter()
            .map(|v| match v {
                Verdict::Allow { delay } => delay.as_secs(),
                Verdict::Refuse { .. } => panic!("locked too early: {verdicts:?}"),
            })
            .collect();
        assert_eq!(delays, vec![0, 0, 0, 1, 2]);
        let until = now() + Duration::minutes(15);
        assert_eq!(verdicts[5], Verdict::Refuse { until }, "the sixth attempt is not checked");
        assert_eq!(record.map(|r| r.count), Some(5), "refused attempts do not extend the lock");
        assert_eq!(attempts(&mut record, 1, now() + Duration::minutes(14)), vec![Verdict::Refuse { until }]);
        let later = now() + Duration::minutes(16);
        assert_eq!(attempts(&mut record, 1, later), vec![Verdict::Allow { delay: std::time::Duration::ZERO }]);
        assert_eq!(record.map(|r| r.count), Some(1), "a lock that ran out starts the count again");
    }

    #[test]
    fn old_failures_do_not_count() {
        let mut record = Some(Failures { count: 4, first_at: now() - Duration::hours(1), locked_until: None });
        assert_eq!(attempts(&mut record, 1, now()), vec![Verdict::Allow { delay: std::time::Duration::ZERO }]);
        assert_eq!(record.map(|r| r.count), Some(1));
    }

    #[test]
    fn a_correct_last_attempt_gives_back_its_lock() {
        let mut record = None;
        attempts(&mut record, 5, now());
        assert!(record.is_some_and(|r| r.is_locked(now())));
        let back = give_back(record, &POLICY, now()).expect("still counted");
        assert_eq!(back.count, 4);
        assert!(!back.is_locked(now()));
    }
}
