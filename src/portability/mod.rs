//! Moving and keeping the whole database: a portable, versioned export file
//! (JSON lines) that loads into an empty database of either kind, and
//! consistent online backups of a SQLite database.
//!
//! The file: a header line `{"format":"secondlook-export","version":1,
//! "schema":<latest migration>,"exported_at":…,"tables":[…]}`, then one line
//! per row `{"table":…,"row":{…}}` — tables in foreign-key order, rows in id
//! order — and a trailer `{"trailer":{"counts":{table: rows}}}` so that a
//! cut-off file is refused on import. Rows are the table mappings'
//! serialisations, so a column added to a mapping is carried without change
//! here.

pub mod backup;
pub mod file;

pub use backup::backup;
pub use file::{export, import};

/// An export, import or backup that could not be done; the message says why.
#[derive(Debug, thiserror::Error)]
pub enum PortabilityError {
    #[error("{0}")]
    Refused(String),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
