//! The vocabulary of a case — reasons, record kinds, opinion rounds — and the
//! checks that turn raw input into values the rest of the code can trust.

pub use crate::vocabulary::{
    ConsultationMode, HoldReason, OpinionChoice, Reason, RecordKind, RecordStatus, parse_round, round_name,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choice_reads_back_as_written() {
        for choice in [OpinionChoice::Round(1), OpinionChoice::Round(4), OpinionChoice::Other] {
            assert_eq!(choice.to_string().parse::<OpinionChoice>().ok(), Some(choice));
        }
        assert!("eleventh".parse::<OpinionChoice>().is_err());
        assert!("".parse::<OpinionChoice>().is_err());
    }

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
