//! Second-opinion cases: the stage machine and due dates (pure), the
//! vocabulary of a case, the operations that read and change cases, and
//! the case journal (notes and contact log), and finding cases by name,
//! email, phone or reference, and the patient's consent to share records.

pub mod aggregate;
pub mod consent;
pub mod journal;
pub mod schedule;
pub mod scope;
pub mod search;
pub mod stage;
pub mod store;
pub mod tallies;
pub mod values;
pub mod view;

pub use schedule::{ServiceLevels, StageClock, Urgency};
pub use stage::Stage;
