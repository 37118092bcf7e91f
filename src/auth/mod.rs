//! Identity and access: staff accounts, password hashing, API tokens,
//! sign-in throttling and the session store.

pub mod passwords;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use crate::{
    actor::{Actor, Role, Scope},
    secrets::random_bytes,
};
