//! Patients' rights over their data: a case's full export (for an access
//! request), erasure of a closed case's identifying data and free text, and
//! the retention rule that erases closed cases after a configured time.

pub mod case_export;
pub mod erasure;
pub mod retention;

pub use erasure::erase;
