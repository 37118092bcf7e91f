//! Slows down and then refuses repeated failed sign-ins, per account and per
//! client address. Counts live in the database so every instance sees them.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, sea_query::OnConflict};

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
    /// Try, after waiting this long.
    Allow {
        delay: std::time::Duration,
    },
    Refuse {
        until: DateTime<Utc>,
    },
}

impl Failures {
    fn current(record: Option<Failures>, policy: &Policy, now: DateTime<Utc>) -> Option<Failures> {
        record.filter(|f| f.locked_until.is_some_and(|until| until > now) || f.first_at + policy.window > now)
    }
}

/// Whether a sign-in may be tried now, given the failures so far.
pub fn verdict(record: Option<Failures>, policy: &Policy, now: DateTime<Utc>) -> Verdict {
    let Some(failures) = Failures::current(record, policy, now) else {
        return Verdict::Allow { delay: std::time::Duration::ZERO };
    };
    if let Some(until) = failures.locked_until.filter(|until| *until > now) {
        return Verdict::Refuse { until };
    }
    let over = failures.count - policy.slow_down_after;
    let delay = if over < 0 { 0 } else { 1u64 << over.min(2) };
    Verdict::Allow { delay: std::time::Duration::from_secs(delay) }
}

/// The record after one more failure.
pub fn after_failure(record: Option<Failures>, policy: &Policy, now: DateTime<Utc>) -> Failures {
    let mut next = match Failures::current(record, policy, now) {
        Some(f) if f.locked_until.is_none_or(|until| until > now) => f,
        _ => Failures { count: 0, first_at: now, locked_until: None },
    };
    next.count += 1;
    if next.count >= policy.lock_after {
        next.locked_until = Some(now + policy.window);
    }
    next
}

pub fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
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

pub async fn load(db: &DatabaseConnection, key: &str) -> AppResult<Option<Failures>> {
    let row = sign_in_failure::Entity::find_by_id(key.to_string()).one(db).await?;
    Ok(row.map(|r| Failures { count: r.failures, first_at: r.first_failure_at, locked_until: r.locked_until }))
}

pub async fn record_failure(db: &DatabaseConnection, key: &str, policy: &Policy) -> AppResult<Failures> {
    let txn = db::begin_write(db).await?;
    let before = sign_in_failure::Entity::find_by_id(key.to_string()).one(&txn).await?;
    let before =
        before.map(|r| Failures { count: r.failures, first_at: r.first_failure_at, locked_until: r.locked_until });
    let next = after_failure(before, policy, db::now());
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
    txn.commit().await?;
    Ok(next)
}

pub async fn clear(db: &DatabaseConnection, key: &str) -> AppResult<()> {
    sign_in_failure::Entity::delete_by_id(key.to_string()).exec(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).single().expect("valid time")
    }

    const POLICY: Policy = Policy { slow_down_after: 3, lock_after: 5, window: Duration::minutes(15) };

    #[test]
    fn failures_slow_down_then_lock_then_are_forgotten() {
        let mut record = None;
        let mut delays = Vec::new();
        for _ in 0..4 {
            match verdict(record, &POLICY, now()) {
                Verdict::Allow { delay } => delays.push(delay.as_secs()),
                Verdict::Refuse { .. } => panic!("locked too early"),
            }
            record = Some(after_failure(record, &POLICY, now()));
        }
        assert_eq!(delays, vec![0, 0, 0, 1]);
        record = Some(after_failure(record, &POLICY, now()));
        assert_eq!(verdict(record, &POLICY, now()), Verdict::Refuse { until: now() + Duration::minutes(15) });
        assert_eq!(
            verdict(record, &POLICY, now() + Duration::minutes(14)),
            Verdict::Refuse { until: now() + Duration::minutes(15) }
        );
        let later = now() + Duration::minutes(16);
        assert_eq!(verdict(record, &POLICY, later), Verdict::Allow { delay: std::time::Duration::ZERO });
        let fresh = after_failure(record, &POLICY, later);
        assert_eq!(fresh.count, 1, "a lock that ran out starts the count again");
    }

    #[test]
    fn old_failures_do_not_count() {
        let old = Failures { count: 4, first_at: now() - Duration::hours(1), locked_until: None };
        assert_eq!(verdict(Some(old), &POLICY, now()), Verdict::Allow { delay: std::time::Duration::ZERO });
        assert_eq!(after_failure(Some(old), &POLICY, now()).count, 1);
    }
}
