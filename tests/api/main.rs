//! HTTP-level tests of the JSON API and the command line, each run once on
//! SQLite and once on PostgreSQL.

mod common;
mod postgres;

mod access;
mod browser;
mod cli;
mod database;
mod input;
mod web;
mod workflow;
