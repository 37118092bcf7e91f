//! SecondLook carries patients through a second medical opinion: each step
//! — records, specialist, consultation, comparison, decision — is a tracked,
//! dated stage.
//!
//! Layers, top to bottom; a module uses only those below it (the `layers`
//! test below enforces it):
//! `cli`, `demo` → `app` (HTTP wiring) → `api` (JSON API), `web` (staff
//! pages) → `refusals` (auditing refused requests) → `http` (shared
//! extractors), `state` (`AppState`) → `privacy` (case export, erasure,
//! retention), `portability` (whole-database export, import, backup) →
//! `reminders` (planner, outbox, scans, the reset email) → `reports`
//! (figures) → `documents` (files on a case: sealing, storage, their
//! rows) → `cases` (stage machine, due dates, case operations) →
//! `specialists` (directory), `mail` (composing and sending) → `auth`
//! (accounts, reset links, tokens, throttling, sessions) → `audit` (the
//! trail) → `db` (connection, migrations, entities) → `actor`, `secrets`,
//! `validate`, `vocabulary`, `ids`, `config`, `error`.

pub mod actor;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod documents;
pub mod error;
pub mod http;
pub mod ids;
pub mod insurance;
pub mod mail;
pub mod portability;
pub mod portal;
pub mod privacy;
pub mod providers;
pub mod records_requests;
pub mod refusals;
pub mod reminders;
pub mod reports;
pub mod secrets;
pub mod specialists;
pub mod state;
pub mod validate;
pub mod vocabulary;
pub mod web;

#[cfg(test)]
mod layers {
    //! Keeps the layers visible: no top-level module may reach, through any
    //! path, a module that uses it back.

    use std::{
        collections::{BTreeMap, BTreeSet},
        path::{Path, PathBuf},
    };

    fn rust_files(path: &Path, into: &mut Vec<PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).expect("source folder").flatten() {
                rust_files(&entry.path(), into);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path.to_path_buf());
        }
    }

    /// The top-level modules each top-level module names, outside its tests.
    fn uses() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut modules = BTreeMap::new();
        for entry in std::fs::read_dir(&src).expect("src").flatten() {
            let name = entry.file_name().to_string_lossy().trim_end_matches(".rs").to_string();
            if name != "lib" && name != "main" {
                let mut files = Vec::new();
                rust_files(&entry.path(), &mut files);
                modules.insert(name, files);
            }
        }
        let names: BTreeSet<String> = modules.keys().cloned().collect();
        modules
            .iter()
            .map(|(module, files)| {
                let mut used = BTreeSet::new();
                for file in files {
                    let text = std::fs::read_to_string(file).expect("readable source");
                    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                    for (i, _) in code.match_indices("crate::") {
                        let rest = &code[i + "crate::".len()..];
                        if let Some(group) = rest.strip_prefix('{') {
                            // `use crate::{a, b::{c, d}, e}`: the names at the top level of the braces.
                            let mut depth = 0;
                            let mut word = String::new();
                            let mut at_start = true;
                            for ch in group.chars() {
                                match ch {
                                    '{' => depth += 1,
                                    '}' if depth == 0 => break,
                                    '}' => depth -= 1,
                                    ',' if depth == 0 => at_start = true,
                                    c if depth == 0 && at_start && (c.is_alphanumeric() || c == '_') => word.push(c),
                                    _ if depth == 0 && !word.is_empty() => {
                                        used.insert(std::mem::take(&mut word));
                                        at_start = false;
                                    }
                                    _ => {}
                                }
                            }
                            if !word.is_empty() {
                                used.insert(word);
                            }
                        } else {
                            let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                            used.insert(word);
                        }
                    }
                }
                used.retain(|u| names.contains(u) && u != module);
                (module.clone(), used)
            })
            .collect()
    }

    #[test]
    fn no_module_uses_one_that_uses_it_back() {
        let graph = uses();
        assert!(graph.len() > 10, "the source tree was found: {graph:?}");
        assert!(graph["api"].contains("state") && graph["web"].contains("http"), "uses are read: {graph:?}");
        for start in graph.keys() {
            // Every module reachable from `start`; `start` must not be among them.
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&String> = graph[start].iter().collect();
            while let Some(next) = todo.pop() {
                if seen.insert(next.clone()) {
                    todo.extend(graph.get(next).into_iter().flatten());
                }
            }
            assert!(!seen.contains(start), "{start} reaches itself through {:?}", graph[start]);
        }
    }
}
