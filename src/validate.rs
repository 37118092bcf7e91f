//! Checks that turn raw text from any edge (API, forms, command line,
//! settings) into values the rest of the code can trust, and the helpers for
//! matching text the same way on both databases. Used by the domain modules
//! (`auth`, `cases`, `specialists`, `reports`) and by `config`; uses nothing
//! of theirs.

use crate::error::FieldErrors;

/// Field length limits, in characters.
pub mod limits {
    pub const NAME: usize = 200;
    pub const EMAIL: usize = 254;
    pub const PHONE: usize = 40;
    pub const SPECIALTY: usize = 100;
    pub const SHORT_TEXT: usize = 500;
    pub const LONG_TEXT: usize = 20_000;
}

/// Checks one text field: trims nothing (text is stored exactly as given),
/// but refuses blank required values, control characters other than line
/// breaks and tabs in long text, and anything over `max` characters.
pub fn check_text(errors: &mut FieldErrors, field: &str, value: &str, max: usize, required: bool) {
    if required && value.trim().is_empty() {
        errors.add(field, "is required");
    } else if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    } else if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        errors.add(field, "contains control characters");
    }
}

/// A single-line text field (names, places): no line breaks at all.
pub fn check_line(errors: &mut FieldErrors, field: &str, value: &str, max: usize, required: bool) {
    check_text(errors, field, value, max, required);
    if value.contains(['\n', '\r']) {
        errors.add(field, "must be a single line");
    }
}

/// Whether optional text was given at all (not only blanks). Audit details
/// say that much of free text and searches, never the text itself.
pub fn is_given(text: Option<&str>) -> bool {
    text.is_some_and(|t| !t.trim().is_empty())
}

/// Longest search text accepted; longer is no name or reference anyone types.
pub const SEARCH_TEXT: usize = 200;

/// Search boxes and filters: bounded, and no control characters (a NUL
/// cannot even reach PostgreSQL).
pub fn check_search(field: &str, value: Option<&str>) -> Result<(), crate::error::AppError> {
    let mut errors = FieldErrors::new();
    if let Some(value) = value {
        if value.chars().count() > SEARCH_TEXT {
            errors.add(field, format!("must be at most {SEARCH_TEXT} characters"));
        } else if value.chars().any(char::is_control) {
            errors.add(field, "contains control characters");
        }
    }
    errors.into_result()
}

/// The earliest and latest instants a case may name (appointments, events).
/// Both databases store far more, but PostgreSQL stops at 4713 BC and
/// nothing in a second opinion happens outside these years.
pub const EARLIEST_YEAR: i32 = 1900;
pub const LATEST_YEAR: i32 = 2199;

/// What is wrong with a date outside those years.
pub const YEARS: &str = "must be between the years 1900 and 2199";

pub fn year_in_range(year: i32) -> bool {
    (EARLIEST_YEAR..=LATEST_YEAR).contains(&year)
}

pub fn check_instant(errors: &mut FieldErrors, field: &str, value: &chrono::DateTime<chrono::Utc>) {
    if !year_in_range(chrono::Datelike::year(value)) {
        errors.add(field, YEARS);
    }
}

pub fn check_email(errors: &mut FieldErrors, field: &str, value: &str) {
    if value.trim().is_empty() {
        errors.add(field, "is required");
    } else if value.len() > limits::EMAIL || value.parse::<lettre::Address>().is_err() {
        errors.add(field, "is not a valid email address");
    }
}

pub fn check_phone(errors: &mut FieldErrors, field: &str, value: &str) {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let allowed = value.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if value.chars().count() > limits::PHONE || !allowed || !(5..=20).contains(&digits) {
        errors.add(field, "is not a valid phone number (digits, spaces and + - ( ) . only)");
    }
}

pub fn check_timezone(errors: &mut FieldErrors, field: &str, value: &str) {
    if value.parse::<chrono_tz::Tz>().is_err() {
        errors.add(field, "is not a known IANA time zone such as Europe/Paris");
    }
}

/// A BCP 47 language tag in its common shape: `en`, `pt-BR`, `zh-Hant-TW`.
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or_default();
    let primary_ok = (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
    let rest_ok = parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    primary_ok && rest_ok && tag.len() <= 35
}

pub fn check_language(errors: &mut FieldErrors, field: &str, value: &str) {
    if !is_language_tag(value) {
        errors.add(field, "is not a language tag such as en or pt-BR");
    }
}

/// A `LIKE` pattern matching values that contain `fragment` literally.
pub fn like_contains(fragment: &str) -> sea_orm::sea_query::LikeExpr {
    let escaped = fragment.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    sea_orm::sea_query::LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// Lower-cased text used for case-insensitive matching in any database.
pub fn search_key(parts: &[&str]) -> String {
    parts.iter().map(|p| p.to_lowercase()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for ok in ["en", "pt-BR", "zh-Hant-TW", "ast"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "e", "english!", "en--US", "en-"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn text_checks() {
        let mut errors = FieldErrors::new();
        check_line(&mut errors, "a", "<script>alert('x')</script> Zoë 山田", 200, true);
        assert!(errors.is_empty());
        check_line(&mut errors, "b", "   ", 200, true);
        check_line(&mut errors, "c", &"x".repeat(201), 200, true);
        check_line(&mut errors, "d", "two\nlines", 200, true);
        check_email(&mut errors, "e", "not an email");
        check_phone(&mut errors, "f", "call me");
        check_timezone(&mut errors, "g", "Mars/Olympus");
        assert_eq!(errors.0.keys().cloned().collect::<Vec<_>>(), vec!["b", "c", "d", "e", "f", "g"]);
    }
}
