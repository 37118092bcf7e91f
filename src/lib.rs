//! SecondLook carries patients through a second medical opinion: each step
//! — records, specialist, consultation, comparison, decision — is a tracked,
//! dated stage.
//!
//! Layout: `cases` (stage machine, due dates, case operations), `specialists`
//! (directory), `auth` (accounts, tokens, the acting `Actor`), `audit` (the
//! trail), `db` (connection, migrations, table mappings), `api` (JSON API),
//! `web` (staff pages), `reports` (caseload and admin figures), `reminders` (planner, outbox, scans), `mail` (composing and sending), `app` (HTTP wiring), `refusals` (auditing refused requests), `cli` (the `secondlook` command), `demo` (sample data), `privacy` (case
//! export, erasure, retention), `portability` (whole-database export, import
//! and backup).

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod mail;
pub mod portability;
pub mod privacy;
pub mod refusals;
pub mod reminders;
pub mod reports;
pub mod specialists;
pub mod web;
