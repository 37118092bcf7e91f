//! The vocabulary of a case — reasons, record kinds, opinion rounds — and the
//! checks that turn raw input into values the rest of the code can trust.

pub use crate::vocabulary::{ConsultationMode, HoldReason, Reason, RecordKind, RecordStatus};

const ROUND_WORDS: [&str; 10] =
    ["original", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"];

/// An opinion round: 1 is the original opinion, 2 the second, and so on.
pub fn round_name(round: i32) -> String {
    usize::try_from(round - 1)
        .ok()
        .and_then(|i| ROUND_WORDS.get(i))
        .map_or_else(|| format!("round_{round}"), |w| (*w).to_string())
}

pub fn parse_round(word: &str) -> Option<i32> {
    ROUND_WORDS.iter().position(|w| *w == word).and_then(|i| i32::try_from(i + 1).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_have_names_both_ways() {
        assert_eq!(round_name(1), "original");
        assert_eq!(round_name(3), "third");
        assert_eq!(parse_round("second"), Some(2));
        assert_eq!(parse_round("tenth"), Some(10));
        assert_eq!(parse_round("eleventh"), None);
        for round in 1..=10 {
            assert_eq!(parse_round(&round_name(round)), Some(round));
        }
    }
}
