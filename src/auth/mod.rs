//! Identity and access: staff accounts, password hashing, password reset
//! links, API tokens, sign-in throttling and the session store.

pub mod password_resets;
pub mod passwords;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use crate::{
    actor::{Actor, Role, Scope},
    secrets::random_bytes,
};
