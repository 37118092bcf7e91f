//! Table mappings, one module per table. Plain rows: rules live in the
//! capability modules that use them.

pub mod api_token;
pub mod audit_entry;
pub mod case;
pub mod case_contact;
pub mod case_insurance;
pub mod case_note;
pub mod case_record;
pub mod case_round;
pub mod document;
pub mod opinion;
pub mod outbox_message;
pub mod password_reset;
pub mod portal_consent;
pub mod portal_link;
pub mod portal_partner;
pub mod portal_survey;
pub mod provider;
pub mod records_request;
pub mod records_request_kind;
pub mod session;
pub mod sign_in_failure;
pub mod specialist;
pub mod stage_change;
pub mod tally_survey;
pub mod user;
