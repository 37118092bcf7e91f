//! Typed ids: a case id cannot be passed where a user or specialist id is
//! meant. Each is its number on the wire and in the database.

use sea_orm::DeriveValueType;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, DeriveValueType)]
        #[serde(transparent)]
        pub struct $name(pub i32);

        impl $name {
            pub fn get(self) -> i32 {
                self.0
            }
        }

        impl From<i32> for $name {
            fn from(id: i32) -> Self {
                Self(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A case.
    CaseId
);
id_type!(
    /// A staff account.
    UserId
);
id_type!(
    /// A document on a case.
    DocumentId
);
id_type!(
    /// A specialists directory entry.
    SpecialistId
);
