//! Due dates: how long each stage may take (the service level) and how time on
//! hold pushes a due date back. Pure: every function takes `now` when it needs it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::Stage;

pub use crate::vocabulary::Urgency;

/// How long each open stage may take, per urgency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLevels {
    allowances: BTreeMap<(Urgency, Stage), Duration>,
}

impl ServiceLevels {
    pub fn new(allowances: BTreeMap<(Urgency, Stage), Duration>) -> Self {
        Self { allowances }
    }

    /// The levels the settings give (checked at start-up: every one above zero).
    pub fn from_settings(settings: &crate::config::ServiceLevelSettings) -> Self {
        let mut levels = BTreeMap::new();
        for (urgency, durations) in [(Urgency::Routine, &settings.routine), (Urgency::Expedited, &settings.expedited)] {
            for (name, duration) in durations.entries() {
                if let Some(stage) = Stage::parse(name) {
                    levels.insert((urgency, stage), Duration::from_std(duration).unwrap_or(Duration::MAX));
                }
            }
        }
        Self::new(levels)
    }

    /// `None` for final stages, which have no due date.
    pub fn allowance(&self, stage: Stage, urgency: Urgency) -> Option<Duration> {
        if stage.is_final() {
            return None;
        }
        self.allowances.get(&(urgency, stage)).copied()
    }
}

/// The timing of the stage a case is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageClock {
    pub entered_at: DateTime<Utc>,
    /// Set while the case is on hold.
    pub held_since: Option<DateTime<Utc>>,
    /// Time spent on hold in this stage before the current hold.
    pub held_before: Duration,
}

impl StageClock {
    pub fn entered(at: DateTime<Utc>) -> Self {
        Self { entered_at: at, held_since: None, held_before: Duration::zero() }
    }

    /// Due date: entry + allowance + completed holds. While on hold the date
    /// stays where it was; resuming adds the hold's length.
    pub fn due_at(&self, levels: &ServiceLevels, stage: Stage, urgency: Urgency) -> Option<DateTime<Utc>> {
        let allowance = levels.allowance(stage, urgency)?;
        self.entered_at.checked_add_signed(allowance)?.checked_add_signed(self.held_before)
    }

    /// Starts a hold. Holding a held case changes nothing.
    pub fn hold(self, now: DateTime<Utc>) -> Self {
        Self { held_since: Some(self.held_since.unwrap_or(now)), ..self }
    }

    /// Ends a hold, counting its length as time that does not count.
    pub fn resume(self, now: DateTime<Utc>) -> Self {
        match self.held_since {
            None => self,
            Some(since) => {
                Self { held_since: None, held_before: self.held_before + (now - since).max(Duration::zero()), ..self }
            }
        }
    }
}

/// A held case is never overdue; a final stage has no due date.
pub fn is_overdue(due_at: Option<DateTime<Utc>>, held: bool, now: DateTime<Utc>) -> bool {
    !held && due_at.is_some_and(|due| due < now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_default_settings_give_each_open_stage_its_allowance() {
        let settings = crate::config::Settings::defaults().expect("defaults are valid");
        let levels = ServiceLevels::from_settings(&settings.service_levels);
        assert_eq!(levels.allowance(Stage::RecordsRequested, Urgency::Routine), Some(Duration::days(14)));
        assert_eq!(levels.allowance(Stage::RecordsRequested, Urgency::Expedited), Some(Duration::days(3)));
        assert_eq!(levels.allowance(Stage::OpinionsCompared, Urgency::Expedited), Some(Duration::days(3)));
        assert_eq!(levels.allowance(Stage::DecisionMade, Urgency::Routine), None);
    }

    fn levels() -> ServiceLevels {
        let mut map = BTreeMap::new();
        for stage in &Stage::PATH[..4] {
            map.insert((Urgency::Routine, *stage), Duration::days(14));
            map.insert((Urgency::Expedited, *stage), Duration::days(3));
        }
        ServiceLevels::new(map)
    }

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).single().expect("valid time")
    }

    #[test]
    fn due_date_is_entry_plus_the_service_level() {
        let clock = StageClock::entered(t(1, 9));
        assert_eq!(clock.due_at(&levels(), Stage::RecordsRequested, Urgency::Routine), Some(t(15, 9)));
        assert_eq!(clock.due_at(&levels(), Stage::RecordsRequested, Urgency::Expedited), Some(t(4, 9)));
        assert_eq!(clock.due_at(&levels(), Stage::DecisionMade, Urgency::Routine), None);
    }

    #[test]
    fn time_on_hold_moves_the_due_date_later() {
        let clock = StageClock::entered(t(1, 9)).hold(t(2, 9)).resume(t(7, 9));
        assert_eq!(clock.held_before, Duration::days(5));
        assert_eq!(clock.due_at(&levels(), Stage::RecordsRequested, Urgency::Routine), Some(t(20, 9)));
        let twice = clock.hold(t(8, 9)).resume(t(9, 21));
        assert_eq!(twice.due_at(&levels(), Stage::RecordsRequested, Urgency::Routine), Some(t(21, 21)));
    }

    #[test]
    fn holding_twice_keeps_the_first_start() {
        let clock = StageClock::entered(t(1, 9)).hold(t(2, 9)).hold(t(5, 9));
        assert_eq!(clock.held_since, Some(t(2, 9)));
    }

    #[test]
    fn changing_urgency_keeps_held_time_out() {
        let clock = StageClock::entered(t(1, 9)).hold(t(2, 9)).resume(t(4, 9));
        assert_eq!(clock.due_at(&levels(), Stage::SpecialistChosen, Urgency::Expedited), Some(t(6, 9)));
    }

    #[test]
    fn held_cases_are_never_overdue() {
        let due = Some(t(2, 9));
        assert!(is_overdue(due, false, t(3, 9)));
        assert!(!is_overdue(due, true, t(3, 9)));
        assert!(!is_overdue(due, false, t(2, 9)));
        assert!(!is_overdue(None, false, t(30, 9)));
    }
}
