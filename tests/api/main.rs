//! The integration suite: the JSON API, the staff pages (over HTTP and in a
//! browser), email against a real SMTP server, password resets, and the
//! command line — each test run once on SQLite and once on PostgreSQL.

mod common;
mod postgres;
mod s3_server;
mod smtp_server;

mod access;
mod audit;
mod browser;
mod cli;
mod database;
mod demo;
mod documents;
mod fuzz;
mod input;
mod insurance;
mod journal;
mod mail;
mod password_reset;
mod plans;
mod portability;
mod portal;
mod privacy;
mod records;
mod reports;
mod search;
mod storage;
mod trust;
mod web;
mod workflow;
