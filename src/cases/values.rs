//! The vocabulary of a case — reasons, record kinds, opinion rounds — and the
//! checks that turn raw input into values the rest of the code can trust.

use serde::{Deserialize, Serialize};

/// Declares a closed set of snake_case words with `ALL`, `as_str`, `parse`
/// and `label`, serialised as the word itself.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => ($word:literal, $label:literal)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}

word_enum!(
    /// Why the patient seeks a second opinion.
    Reason {
        SurgeryRecommended => ("surgery_recommended", "Surgery recommended"),
        CancerDiagnosis => ("cancer_diagnosis", "Cancer diagnosis"),
        SeriousDiagnosis => ("serious_diagnosis", "Serious diagnosis"),
        RareCondition => ("rare_condition", "Rare condition"),
        SymptomsMismatch => ("symptoms_mismatch", "Symptoms do not match the diagnosis"),
        TreatmentNotWorking => ("treatment_not_working", "Treatment not working"),
        Uncertain => ("uncertain", "Uncertain diagnosis"),
        Other => ("other", "Other"),
    }
);

word_enum!(
    /// One line of the records checklist.
    RecordKind {
        LabResults => ("lab_results", "Lab results"),
        ImagingXray => ("imaging_xray", "Imaging: X-ray"),
        ImagingCt => ("imaging_ct", "Imaging: CT"),
        ImagingMri => ("imaging_mri", "Imaging: MRI"),
        ImagingPet => ("imaging_pet", "Imaging: PET"),
        PathologyReport => ("pathology_report", "Pathology / biopsy report"),
        MedicationList => ("medication_list", "Medication list"),
        SurgicalReports => ("surgical_reports", "Surgical reports"),
        SymptomTreatmentHistory => ("symptom_treatment_history", "Symptom and treatment history"),
    }
);

word_enum!(
    RecordStatus {
        Requested => ("requested", "Requested"),
        Received => ("received", "Received"),
        NotApplicable => ("not_applicable", "Not applicable"),
    }
);

word_enum!(
    ConsultationMode {
        Virtual => ("virtual", "Virtual"),
        InPerson => ("in_person", "In person"),
    }
);

word_enum!(
    /// What a case on hold is waiting for.
    HoldReason {
        WaitingForPatient => ("waiting_for_patient", "Waiting for the patient"),
        InsurancePreapproval => ("insurance_preapproval", "Waiting for insurance pre-approval"),
        OutsideProvider => ("outside_provider", "Waiting for an outside provider"),
        Other => ("other", "Other"),
    }
);

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

    #[test]
    fn words_round_trip() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(Reason::parse("cancer_diagnosis"), Some(Reason::CancerDiagnosis));
        assert_eq!(Reason::parse("Cancer"), None);
    }
}
