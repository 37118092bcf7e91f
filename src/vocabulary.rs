//! The closed vocabularies of the domain — stages, urgencies, reasons, record
//! kinds and statuses, consultation modes, hold reasons, contact log words,
//! staff roles, opinion rounds and the patient's choice among them — as
//! typed values from the edge to the database. On the wire and in the
//! database each is its snake_case word. Below `db`, so the table mappings
//! can store them as typed columns.

use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};
use serde::{Deserialize, Serialize};

/// Declares a closed set of snake_case words with `ALL`, `as_str`, `parse`
/// and `label`, serialised as the word itself and stored as it in a text
/// column; a stored word outside the set is a read error, never a default.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => ($word:literal, $label:literal)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, EnumIter, DeriveActiveEnum)]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
        pub enum $name {
            $(#[serde(rename = $word)] #[sea_orm(string_value = $word)] $variant),+
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

        // Templates compare with the word itself (`case.stage == "withdrawn"`).
        impl PartialEq<&str> for $name {
            fn eq(&self, word: &&str) -> bool {
                self.as_str() == *word
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, value: &$name) -> bool {
                *self == value.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
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
    /// What a document on a case is: one of the record kinds, or a paper
    /// of the second opinion itself.
    DocumentKind {
        LabResults => ("lab_results", "Lab results"),
        ImagingXray => ("imaging_xray", "Imaging: X-ray"),
        ImagingCt => ("imaging_ct", "Imaging: CT"),
        ImagingMri => ("imaging_mri", "Imaging: MRI"),
        ImagingPet => ("imaging_pet", "Imaging: PET"),
        PathologyReport => ("pathology_report", "Pathology / biopsy report"),
        MedicationList => ("medication_list", "Medication list"),
        SurgicalReports => ("surgical_reports", "Surgical reports"),
        SymptomTreatmentHistory => ("symptom_treatment_history", "Symptom and treatment history"),
        SpecialistReport => ("specialist_report", "Specialist's written report"),
        OriginalReport => ("original_report", "Original physician's report"),
        Consent => ("consent", "Consent form"),
        Letter => ("letter", "Letter"),
        Insurance => ("insurance", "Insurance"),
        Other => ("other", "Other"),
    }
);

impl DocumentKind {
    /// The document kind that holds a record of `kind`.
    pub fn of_record(kind: RecordKind) -> Self {
        Self::parse(kind.as_str()).unwrap_or(Self::Other)
    }
}

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

word_enum!(
    /// What kind of place holds a patient's records.
    ProviderKind {
        Hospital => ("hospital", "Hospital"),
        Clinic => ("clinic", "Clinic"),
        Laboratory => ("laboratory", "Laboratory"),
        ImagingCenter => ("imaging_center", "Imaging center"),
        Pharmacy => ("pharmacy", "Pharmacy"),
        PhysicianOffice => ("physician_office", "Physician's office"),
        Other => ("other", "Other"),
    }
);

word_enum!(
    /// On what footing records are asked for: the patient's own right of
    /// access (with its legal clock), or release on their authorization.
    RequestType {
        PatientAccess => ("patient_access", "Patient's right of access"),
        Authorization => ("authorization", "Release on the patient's authorization"),
    }
);

word_enum!(
    /// Where a records request stands.
    RequestState {
        Draft => ("draft", "Draft"),
        Sent => ("sent", "Sent"),
        Acknowledged => ("acknowledged", "Acknowledged"),
        PartiallyReceived => ("partially_received", "Partially received"),
        Fulfilled => ("fulfilled", "Fulfilled"),
        Denied => ("denied", "Denied"),
        Cancelled => ("cancelled", "Cancelled"),
    }
);

word_enum!(
    /// How a records request went to the provider.
    RequestMethod {
        Email => ("email", "Email"),
        Fax => ("fax", "Fax"),
        Portal => ("portal", "Provider's portal"),
        Mail => ("mail", "Mail"),
        InPerson => ("in_person", "In person"),
    }
);

word_enum!(
    /// Whether the patient's insurance pays for a second opinion.
    Coverage {
        Yes => ("yes", "Covered"),
        No => ("no", "Not covered"),
        Unknown => ("unknown", "Not known yet"),
    }
);

word_enum!(
    /// Where the insurer's pre-approval of the second opinion stands.
    Preapproval {
        NotRequired => ("not_required", "Not required"),
        Requested => ("requested", "Requested"),
        Approved => ("approved", "Approved"),
        Denied => ("denied", "Denied"),
        Appealed => ("appealed", "Appealed"),
    }
);

impl Preapproval {
    /// The insurer has answered: the wait a hold for pre-approval stands
    /// for is over (an appeal starts a new one).
    pub fn is_decided(self) -> bool {
        matches!(self, Preapproval::Approved | Preapproval::Denied)
    }
}

word_enum!(
    /// Where a case is on its way to a decision.
    Stage {
        RecordsRequested => ("records_requested", "Records requested"),
        SpecialistChosen => ("specialist_chosen", "Specialist chosen"),
        ConsultationHeld => ("consultation_held", "Consultation held"),
        OpinionsCompared => ("opinions_compared", "Opinions compared"),
        DecisionMade => ("decision_made", "Decision made"),
        Withdrawn => ("withdrawn", "Withdrawn"),
    }
);

impl Stage {
    /// The stages a case moves through on its way to a decision, in order.
    pub const PATH: [Stage; 5] = [
        Stage::RecordsRequested,
        Stage::SpecialistChosen,
        Stage::ConsultationHeld,
        Stage::OpinionsCompared,
        Stage::DecisionMade,
    ];

    /// A final stage is never left and carries no due date.
    pub fn is_final(self) -> bool {
        matches!(self, Stage::DecisionMade | Stage::Withdrawn)
    }
}

word_enum!(
    /// How fast a case must move: each urgency has its own service levels.
    Urgency {
        Routine => ("routine", "Routine"),
        Expedited => ("expedited", "Expedited"),
    }
);

word_enum!(
    /// Who a logged contact was with.
    ContactParty {
        Patient => ("patient", "Patient"),
        Provider => ("provider", "Provider"),
        SpecialistOffice => ("specialist_office", "Specialist's office"),
        Insurer => ("insurer", "Insurer"),
        CarePartner => ("care_partner", "Care partner"),
        Other => ("other", "Other"),
    }
);

word_enum!(
    /// How a logged contact was made.
    ContactChannel {
        Phone => ("phone", "Phone"),
        Email => ("email", "Email"),
        Letter => ("letter", "Letter"),
        Fax => ("fax", "Fax"),
        Portal => ("portal", "Portal"),
        InPerson => ("in_person", "In person"),
    }
);

word_enum!(
    /// Which way a logged contact went.
    ContactDirection {
        Inbound => ("inbound", "Inbound"),
        Outbound => ("outbound", "Outbound"),
    }
);

word_enum!(
    /// A staff member's role.
    Role {
        Admin => ("admin", "Admin"),
        Advocate => ("advocate", "Advocate"),
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

/// Which opinion the patient decided to follow: one of the recorded rounds,
/// or a path none of the opinions proposed. Stored and sent as the round's
/// word (`original`, `second`…) or `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sea_orm::DeriveValueType)]
#[sea_orm(value_type = "String")]
pub enum OpinionChoice {
    Round(i32),
    Other,
}

impl OpinionChoice {
    pub fn round(self) -> Option<i32> {
        match self {
            Self::Round(round) => Some(round),
            Self::Other => None,
        }
    }
}

impl std::fmt::Display for OpinionChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Round(round) => f.write_str(&round_name(*round)),
            Self::Other => f.write_str("other"),
        }
    }
}

impl std::str::FromStr for OpinionChoice {
    type Err = sea_orm::sea_query::ValueTypeErr;

    fn from_str(word: &str) -> Result<Self, Self::Err> {
        match word {
            "other" => Ok(Self::Other),
            _ => parse_round(word).map(Self::Round).ok_or(sea_orm::sea_query::ValueTypeErr),
        }
    }
}

impl serde::Serialize for OpinionChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for OpinionChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        word.parse().map_err(|_| serde::de::Error::custom(format!("unknown opinion choice {word:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(*stage));
        }
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(DocumentKind::of_record(*kind).as_str(), kind.as_str());
        }
        assert_eq!(Reason::parse("cancer_diagnosis"), Some(Reason::CancerDiagnosis));
        assert_eq!(Reason::parse("Cancer"), None);
        assert_eq!(serde_json::to_string(&Stage::DecisionMade).ok().as_deref(), Some("\"decision_made\""));
    }
}
