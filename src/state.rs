//! What every request handler shares: the database pool, the settings and
//! the case rules derived from them, the batched trail of reads, and the
//! document storage with its keys. Below the HTTP shells (`http`, `api`,
//! `web`), so they can all name it without reaching into `app`.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    audit::reads::ReadTrail,
    cases::{ServiceLevels, store::CaseRules},
    config::Settings,
    documents::store::Documents,
};

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub rules: Arc<CaseRules>,
    /// This instance's batched trail of reads.
    pub reads: ReadTrail,
    /// The admin page's times in stage, while they stay current.
    pub timings: crate::reports::TimingsCache,
    /// Where documents are kept and the keys that seal them.
    pub documents: Documents,
    /// Whether the database kept this instance's last probe write, and when.
    pub health: Arc<crate::db::HealthProbe>,
}

impl AppState {
    pub fn new(db: DatabaseConnection, settings: Settings, documents: Documents) -> Self {
        let rules = Self::case_rules(&settings);
        let reads = ReadTrail::start(db.clone());
        Self {
            db,
            settings: Arc::new(settings),
            rules: Arc::new(rules),
            reads,
            timings: Default::default(),
            documents,
            health: Default::default(),
        }
    }

    /// The case rules the settings give.
    pub fn case_rules(settings: &Settings) -> CaseRules {
        CaseRules {
            levels: ServiceLevels::from_settings(&settings.service_levels),
            defaults: settings.cases.clone(),
            consent_required: settings.portal.consent_required,
        }
    }
}
