//! The legal clock of a records request, as plain functions over plain
//! data. A provider must answer a patient's access request within a number
//! of calendar days of receiving it (30 under HIPAA, 45 CFR 164.524; fewer
//! where a jurisdiction says so), and may extend that once, by at most a
//! further number of days, with a written notice sent within the first
//! period. A request released on the patient's authorization runs on our
//! own service level instead. Days are counted in the provider's time
//! zone: a request is due by the end of its last day there.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::vocabulary::{RequestMethod, RequestType};

/// How long providers have, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periods {
    /// Calendar days to answer a patient's access request.
    pub response_days: u32,
    /// The most one extension may add.
    pub extension_days: u32,
    /// Our own service level for a release on the patient's authorization.
    pub authorization_days: u32,
    /// Days a mailed request takes to arrive.
    pub mail_days: u32,
}

impl Default for Periods {
    fn default() -> Self {
        Self { response_days: 30, extension_days: 30, authorization_days: 14, mail_days: 5 }
    }
}

/// When the provider is taken to have received a request sent at `sent_at`
/// by `method`: at once for email, fax, the provider's portal or by hand;
/// some days later by mail.
pub fn received_by_provider(periods: &Periods, method: RequestMethod, sent_at: DateTime<Utc>) -> DateTime<Utc> {
    match method {
        RequestMethod::Mail => sent_at + Duration::days(i64::from(periods.mail_days)),
        RequestMethod::Email | RequestMethod::Fax | RequestMethod::Portal | RequestMethod::InPerson => sent_at,
    }
}

/// The last moment of the calendar day `days` days after `from`, in `tz`:
/// received on the 1st (any hour), 30 days → due by the end of the 31st.
pub fn end_of_day_after(from: DateTime<Utc>, days: u32, tz: Tz) -> DateTime<Utc> {
    let last_day = from.with_timezone(&tz).date_naive() + Duration::days(i64::from(days));
    end_of(last_day, tz)
}

/// The last moment of `day` in `tz` (the moment before the next day starts,
/// wherever clocks jump).
pub fn end_of(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let next = day.succ_opt().unwrap_or(day);
    let next_start = next
        .and_hms_opt(0, 0, 0)
        .and_then(|midnight| {
            tz.from_local_datetime(&midnight)
                .earliest()
                // A zone that skips midnight that day: its day starts at 01:00.
                .or_else(|| tz.from_local_datetime(&(midnight + Duration::hours(1))).earliest())
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0).unwrap_or_default()));
    next_start - Duration::seconds(1)
}

/// The days the provider has for a request of `kind`.
pub fn period_days(periods: &Periods, kind: RequestType) -> u32 {
    match kind {
        RequestType::PatientAccess => periods.response_days,
        RequestType::Authorization => periods.authorization_days,
    }
}

/// When a request of `kind` received at `received_at` is due, before any extension.
pub fn due_at(periods: &Periods, kind: RequestType, received_at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    end_of_day_after(received_at, period_days(periods, kind), tz)
}

/// An extension asked for: when the provider's written notice arrived, and
/// the new date it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionAsked {
    pub notice_received_at: DateTime<Utc>,
    pub new_due_at: DateTime<Utc>,
}

/// Why an extension is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionRefusal {
    /// The request was extended once already.
    Used,
    /// The notice arrived after the first period ended.
    TooLate,
    /// The new date is not after the current one.
    NotLater,
    /// The new date is more than the allowed days past the first due date.
    TooLong,
    /// The notice is dated before the provider received the request.
    BeforeReceipt,
}

/// The due date after the extension `asked`, for a request first due at
/// `first_due_at` and received at `received_at`, or why it is refused.
/// `extended` says whether the request was extended before.
pub fn extend(
    periods: &Periods,
    received_at: DateTime<Utc>,
    first_due_at: DateTime<Utc>,
    tz: Tz,
    extended: bool,
    asked: &ExtensionAsked,
) -> Result<DateTime<Utc>, ExtensionRefusal> {
    if extended {
        return Err(ExtensionRefusal::Used);
    }
    if asked.notice_received_at < received_at {
        return Err(ExtensionRefusal::BeforeReceipt);
    }
    if asked.notice_received_at > first_due_at {
        return Err(ExtensionRefusal::TooLate);
    }
    if asked.new_due_at <= first_due_at {
        return Err(ExtensionRefusal::NotLater);
    }
    // Counted in the provider's calendar days, whatever the clocks do between.
    let days_later = asked.new_due_at.with_timezone(&tz).date_naive() - first_due_at.with_timezone(&tz).date_naive();
    if days_later > Duration::days(i64::from(periods.extension_days)) {
        return Err(ExtensionRefusal::TooLong);
    }
    Ok(asked.new_due_at)
}

/// Whether a request due at `due_at` is late at `now` (still waiting on the provider).
pub fn is_overdue(due_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now > due_at
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("valid time")
    }

    fn tz(name: &str) -> Tz {
        name.parse().expect("zone")
    }

    #[test]
    fn thirty_days_end_at_the_end_of_the_providers_thirtieth_day() {
        let periods = Periods::default();
        // Received 9:00 on 1 March in Chicago (CST, UTC-6).
        let received = utc(2026, 3, 1, 15, 0);
        let due = due_at(&periods, RequestType::PatientAccess, received, tz("America/Chicago"));
        // 31 March 23:59:59 in Chicago, which is CDT (UTC-5) by then.
        assert_eq!(due, utc(2026, 4, 1, 4, 59) + Duration::seconds(59));
        // The same request received at 23:30 on 1 March in Chicago is 05:30 on the 2nd in UTC:
        // the provider's calendar, not UTC's, decides the day.
        let evening = utc(2026, 3, 2, 5, 30);
        assert_eq!(due_at(&periods, RequestType::PatientAccess, evening, tz("America/Chicago")), due);
        // In Tokyo the same instant is already 2 March: a day later.
        let tokyo = due_at(&periods, RequestType::PatientAccess, evening, tz("Asia/Tokyo"));
        assert_eq!(tokyo, utc(2026, 4, 1, 14, 59) + Duration::seconds(59));
    }

    #[test]
    fn records_answered_on_the_evening_of_the_last_day_are_on_time() {
        let periods = Periods::default();
        let received = utc(2026, 3, 1, 15, 0);
        let due = due_at(&periods, RequestType::PatientAccess, received, tz("America/Chicago"));
        // 21:00 on 31 March in Chicago.
        let evening = utc(2026, 4, 1, 2, 0);
        assert!(!is_overdue(due, evening));
        assert!(is_overdue(due, utc(2026, 4, 1, 5, 0)), "past midnight there, it is late");
    }

    #[test]
    fn mailed_requests_arrive_later_and_authorizations_run_on_our_service_level() {
        let periods = Periods::default();
        let sent = utc(2026, 5, 4, 12, 0);
        assert_eq!(received_by_provider(&periods, RequestMethod::Fax, sent), sent);
        assert_eq!(received_by_provider(&periods, RequestMethod::Mail, sent), utc(2026, 5, 9, 12, 0));
        let due = due_at(&periods, RequestType::Authorization, sent, Tz::UTC);
        assert_eq!(due, utc(2026, 5, 18, 23, 59) + Duration::seconds(59));
        let shorter = Periods { response_days: 15, ..Periods::default() };
        assert_eq!(
            due_at(&shorter, RequestType::PatientAccess, sent, Tz::UTC),
            utc(2026, 5, 19, 23, 59) + Duration::seconds(59),
            "a jurisdiction's shorter period"
        );
    }

    #[test]
    fn one_extension_with_a_notice_inside_the_first_period() {
        let periods = Periods::default();
        let received = utc(2026, 3, 2, 12, 0);
        let first = due_at(&periods, RequestType::PatientAccess, received, Tz::UTC);
        let asked = |notice: DateTime<Utc>, new_due: DateTime<Utc>| ExtensionAsked {
            notice_received_at: notice,
            new_due_at: new_due,
        };
        let fine = asked(utc(2026, 3, 20, 9, 0), first + Duration::days(30));
        assert_eq!(extend(&periods, received, first, Tz::UTC, false, &fine), Ok(first + Duration::days(30)));
        assert_eq!(extend(&periods, received, first, Tz::UTC, true, &fine), Err(ExtensionRefusal::Used));
        let late = asked(first + Duration::seconds(1), first + Duration::days(10));
        assert_eq!(extend(&periods, received, first, Tz::UTC, false, &late), Err(ExtensionRefusal::TooLate));
        let long = asked(utc(2026, 3, 20, 9, 0), first + Duration::days(31));
        assert_eq!(extend(&periods, received, first, Tz::UTC, false, &long), Err(ExtensionRefusal::TooLong));
        let earlier = asked(utc(2026, 3, 20, 9, 0), first);
        assert_eq!(extend(&periods, received, first, Tz::UTC, false, &earlier), Err(ExtensionRefusal::NotLater));
        let before = asked(utc(2026, 3, 1, 9, 0), first + Duration::days(5));
        assert_eq!(extend(&periods, received, first, Tz::UTC, false, &before), Err(ExtensionRefusal::BeforeReceipt));
    }

    #[test]
    fn an_extension_counts_the_providers_days_across_a_clock_change() {
        let periods = Periods::default();
        let chicago = tz("America/Chicago");
        // First due by the end of 22 October (CDT); 30 days later is the end of 21 November (CST).
        let first = end_of(NaiveDate::from_ymd_opt(2026, 10, 22).expect("date"), chicago);
        let received = first - Duration::days(30);
        let last_day = end_of(NaiveDate::from_ymd_opt(2026, 11, 21).expect("date"), chicago);
        let asked = ExtensionAsked { notice_received_at: received + Duration::days(1), new_due_at: last_day };
        assert_eq!(extend(&periods, received, first, chicago, false, &asked), Ok(last_day));
        let day_after = ExtensionAsked { new_due_at: last_day + Duration::days(1), ..asked };
        assert_eq!(extend(&periods, received, first, chicago, false, &day_after), Err(ExtensionRefusal::TooLong));
    }

    #[test]
    fn a_day_ends_where_the_next_begins_even_when_clocks_skip_midnight() {
        // Santiago moved its clocks from 00:00 to 01:00 on 6 September 2026.
        let end = end_of(NaiveDate::from_ymd_opt(2026, 9, 5).expect("date"), tz("America/Santiago"));
        let local = end.with_timezone(&tz("America/Santiago"));
        assert_eq!(local.date_naive(), NaiveDate::from_ymd_opt(2026, 9, 5).expect("date"));
        assert!((end + Duration::seconds(1)).with_timezone(&tz("America/Santiago")).date_naive() > local.date_naive());
    }

    proptest! {
        #[test]
        fn an_extension_moves_the_due_date_at_most_its_days_and_only_once(
            received_offset in 0i64..400 * 86_400,
            notice_after in 0i64..40 * 86_400,
            extra in -5i64..40 * 86_400,
            extension_days in 1u32..60,
            zone in proptest::sample::select(vec!["UTC", "America/Chicago", "Asia/Tokyo", "Pacific/Auckland"]),
        ) {
            let periods = Periods { extension_days, ..Periods::default() };
            let received = utc(2025, 1, 1, 0, 0) + Duration::seconds(received_offset);
            let first = due_at(&periods, RequestType::PatientAccess, received, tz(zone));
            let asked = ExtensionAsked {
                notice_received_at: received + Duration::seconds(notice_after),
                new_due_at: first + Duration::seconds(extra),
            };
            let zone = tz(zone);
            if let Ok(new_due) = extend(&periods, received, first, zone, false, &asked) {
                prop_assert!(new_due > first);
                // At most the allowed number of the provider's days later.
                let days = new_due.with_timezone(&zone).date_naive() - first.with_timezone(&zone).date_naive();
                prop_assert!(days <= Duration::days(i64::from(extension_days)));
                prop_assert!(asked.notice_received_at <= first);
                prop_assert_eq!(extend(&periods, received, first, zone, true, &asked), Err(ExtensionRefusal::Used));
            }
        }

        #[test]
        fn a_due_date_is_the_end_of_a_day_in_the_providers_zone(
            received_offset in 0i64..800 * 86_400,
            days in 1u32..90,
            zone in proptest::sample::select(vec!["UTC", "America/Chicago", "Europe/London", "Australia/Sydney"]),
        ) {
            let zone = tz(zone);
            let received = utc(2025, 1, 1, 0, 0) + Duration::seconds(received_offset);
            let due = end_of_day_after(received, days, zone);
            let local_due = due.with_timezone(&zone).date_naive();
            let local_received = received.with_timezone(&zone).date_naive();
            prop_assert_eq!((local_due - local_received).num_days(), i64::from(days));
            prop_assert!((due + Duration::seconds(1)).with_timezone(&zone).date_naive() > local_due);
        }
    }
}
