//! Settings: the embedded `config/default.toml`, overlaid by an optional file
//! and by environment variables. Owns validation of everything configurable so
//! that a bad setting stops start-up with a message instead of failing later.

use std::{net::SocketAddr, path::Path, time::Duration};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::secrets::Secret;

/// The defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub web: WebSettings,
    pub mail: MailSettings,
    pub reminders: ReminderSettings,
    pub bootstrap: BootstrapSettings,
    pub cases: CaseSettings,
    pub service_levels: ServiceLevelSettings,
    pub retention: RetentionSettings,
    pub documents: DocumentSettings,
    pub portal: PortalSettings,
    pub records_requests: RecordsRequestSettings,
}

/// Deadlines of records requests; see `[records_requests]` in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordsRequestSettings {
    pub response_days: u32,
    pub extension_days: u32,
    pub authorization_days: u32,
    pub mail_days: u32,
    /// Named jurisdictions with their own (shorter) periods.
    #[serde(default)]
    pub jurisdictions: std::collections::BTreeMap<String, JurisdictionSettings>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JurisdictionSettings {
    pub response_days: u32,
    #[serde(default)]
    pub extension_days: Option<u32>,
}

/// The patient portal; see `[portal]` in `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct PortalSettings {
    #[serde(with = "humantime_serde")]
    pub link_lifetime: Duration,
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    pub consent_required: bool,
    pub uploads_per_hour: u32,
    pub new_links_per_hour: u32,
}

/// Where document files live and how big they may be; see `[documents]` in
/// `config/default.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct DocumentSettings {
    pub storage: DocumentStorage,
    pub local_dir: String,
    pub local_dir_shared: bool,
    pub max_file_bytes: u64,
    #[serde(with = "humantime_serde")]
    pub purge_deleted_after: Duration,
    pub master_key: Secret,
    pub master_key_file: String,
    pub previous_master_key: Secret,
    pub s3: S3Settings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentStorage {
    Local,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
pub struct S3Settings {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub allow_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    /// Empty: off. Otherwise a duration such as "2y" after which closed
    /// cases are erased; read with [`RetentionSettings::erase_closed_after`].
    pub erase_closed_after: String,
}

impl RetentionSettings {
    /// How long a closed case is kept before its patient data is erased;
    /// `None` when retention is off.
    pub fn erase_closed_after(&self) -> Result<Option<Duration>, String> {
        let raw = self.erase_closed_after.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        match humantime_serde::re::humantime::parse_duration(raw) {
            Ok(age) if !age.is_zero() => Ok(Some(age)),
            Ok(_) => Err("retention.erase_closed_after must be longer than zero (or empty to switch it off)".into()),
            Err(e) => {
                Err(format!("retention.erase_closed_after {raw:?} is not a duration such as \"2y\" or \"180d\": {e}"))
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub public_url: String,
    pub max_body_bytes: usize,
    pub trust_forwarded_for: bool,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// `Strict-Transport-Security` max-age; zero sends no such header.
    #[serde(with = "humantime_serde")]
    pub hsts_max_age: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: Secret,
    /// Connections in this instance's pool; unset, [`DatabaseSettings::pool_size`]
    /// picks one for the database.
    #[serde(default)]
    pub max_connections: Option<u32>,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub sqlite_busy_timeout: Duration,
}

impl DatabaseSettings {
    /// SQLite pool size when none is set. SQLite lets one writer in at a
    /// time and its readers share two cores here; every connection keeps a
    /// page cache and prepared statements of its own, so more connections
    /// cost memory without adding throughput.
    pub const SQLITE_POOL: u32 = 4;
    /// PostgreSQL pool size when none is set.
    pub const POSTGRES_POOL: u32 = 10;

    pub fn is_sqlite(&self) -> bool {
        self.url.expose().trim().starts_with("sqlite:")
    }

    pub fn is_postgres(&self) -> bool {
        self.url.expose().trim().starts_with("postgres")
    }

    /// The pool size in force: the configured one, else the database's default.
    pub fn pool_size(&self) -> u32 {
        self.max_connections.unwrap_or(if self.is_sqlite() { Self::SQLITE_POOL } else { Self::POSTGRES_POOL })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebSettings {
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub session_absolute_lifetime: Duration,
    pub secure_cookies: bool,
    pub slow_down_after: u32,
    pub account_lockout_after: u32,
    pub address_lockout_after: u32,
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    #[serde(with = "humantime_serde")]
    pub password_reset_valid_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub file_dir: String,
    pub from_name: String,
    pub from_address: String,
    pub reply_to: String,
    pub message_id_domain: String,
    pub smtp: SmtpSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    pub password: Secret,
    pub pool_size: u32,
    #[serde(with = "humantime_serde")]
    pub pool_idle: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReminderSettings {
    pub enabled: bool,
    pub schedule: String,
    pub batch_size: u64,
    #[serde(with = "humantime_serde")]
    pub due_soon_window: Duration,
    pub overdue_max: u32,
    pub digest_time: String,
    #[serde(with = "humantime_serde")]
    pub records_nudge_every: Duration,
    pub records_nudge_max: u32,
    pub quiet_start: String,
    pub quiet_end: String,
    pub weekly_summary_day: String,
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapSettings {
    pub admin_email: String,
    pub admin_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CaseSettings {
    pub reference_prefix: String,
    pub default_timezone: String,
    pub default_language: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServiceLevelSettings {
    pub routine: StageDurations,
    pub expedited: StageDurations,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDurations {
    #[serde(with = "humantime_serde")]
    pub records_requested: Duration,
    #[serde(with = "humantime_serde")]
    pub specialist_chosen: Duration,
    #[serde(with = "humantime_serde")]
    pub consultation_held: Duration,
    #[serde(with = "humantime_serde")]
    pub opinions_compared: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// The compiled-in defaults only, ignoring files and the environment.
    pub fn defaults() -> Result<Self, ConfigError> {
        let raw = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml)).build()?;
        Self::finish(raw)
    }

    /// Defaults, then `file`, then `SECONDLOOK__*`, `DATABASE_URL` and `SECONDLOOK_LISTEN`.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!("config file {} does not exist", path.display())));
            }
            builder = builder.add_source(File::from(path).format(FileFormat::Toml));
        }
        builder = builder.add_source(
            Environment::with_prefix("SECONDLOOK").prefix_separator("__").separator("__").try_parsing(true),
        );
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        builder = builder
            .set_override_option("database.url", non_empty("DATABASE_URL"))?
            .set_override_option("server.listen", non_empty("SECONDLOOK_LISTEN"))?
            .set_override_option("documents.master_key", non_empty("SECONDLOOK_MASTER_KEY"))?
            .set_override_option("documents.previous_master_key", non_empty("SECONDLOOK_PREVIOUS_MASTER_KEY"))?;
        Self::finish(builder.build()?)
    }

    fn finish(raw: Config) -> Result<Self, ConfigError> {
        let settings: Settings = raw.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.cases.default_timezone.parse::<chrono_tz::Tz>().is_err() {
            return invalid(format!(
                "cases.default_timezone {:?} is not an IANA time zone",
                self.cases.default_timezone
            ));
        }
        if !crate::validate::is_language_tag(&self.cases.default_language) {
            return invalid(format!("cases.default_language {:?} is not a language tag", self.cases.default_language));
        }
        let prefix = &self.cases.reference_prefix;
        if prefix.is_empty() || prefix.len() > 8 || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
            return invalid("cases.reference_prefix must be 1 to 8 letters or digits".into());
        }
        let minimum = if self.database.is_postgres() { 2 } else { 1 };
        if self.database.pool_size() < minimum {
            return invalid(format!("database.max_connections must be at least {minimum} for this database"));
        }
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes must be at least 1024".into());
        }
        if let Err(problem) = self.reminders.check() {
            return invalid(problem);
        }
        if let Err(problem) = self.retention.erase_closed_after() {
            return invalid(problem);
        }
        if self.mail.from_address.parse::<lettre::Address>().is_err() {
            return invalid(format!("mail.from_address {:?} is not an email address", self.mail.from_address));
        }
        if self.reminders.batch_size == 0 || self.reminders.max_attempts == 0 || self.reminders.lease.is_zero() {
            return invalid("reminders.batch_size, max_attempts and lease must be above zero".into());
        }
        let web = &self.web;
        if web.session_idle_timeout < Duration::from_secs(1) || web.session_absolute_lifetime < web.session_idle_timeout
        {
            return invalid(
                "web.session_idle_timeout must be at least 1s and no longer than web.session_absolute_lifetime".into(),
            );
        }
        if web.account_lockout_after == 0 || web.address_lockout_after == 0 || web.lockout.is_zero() {
            return invalid("web lockout thresholds and web.lockout must be above zero".into());
        }
        // A reset link is as good as the password until it expires: a short
        // life keeps a forwarded or forgotten email from opening the account later.
        if web.password_reset_valid_for < Duration::from_secs(60)
            || web.password_reset_valid_for > Duration::from_secs(24 * 3600)
        {
            return invalid("web.password_reset_valid_for must be between 1m and 24h".into());
        }
        let documents = &self.documents;
        if documents.max_file_bytes < 1024 {
            return invalid("documents.max_file_bytes must be at least 1024".into());
        }
        if documents.purge_deleted_after.is_zero() {
            return invalid("documents.purge_deleted_after must be longer than zero".into());
        }
        if documents.storage == DocumentStorage::S3 && documents.s3.bucket.trim().is_empty() {
            return invalid("documents.s3.bucket must be set when documents.storage is \"s3\"".into());
        }
        for (urgency, durations) in
            [("routine", &self.service_levels.routine), ("expedited", &self.service_levels.expedited)]
        {
            for (stage, duration) in durations.entries() {
                if duration.is_zero() {
                    return invalid(format!("service_levels.{urgency}.{stage} must be longer than zero"));
                }
            }
        }
        Ok(())
    }

    /// Why a server must not start with these document settings: several
    /// instances share a PostgreSQL database, so they must share the files.
    pub fn unshared_documents(&self) -> Option<String> {
        let documents = &self.documents;
        (documents.storage == DocumentStorage::Local && self.database.is_postgres() && !documents.local_dir_shared)
            .then(|| {
                "documents.storage is \"local\" with a PostgreSQL database, where several instances may each \
                 keep their own files. Use documents.storage = \"s3\", or a directory every instance shares \
                 (then set documents.local_dir_shared = true)"
                    .to_string()
            })
    }

    /// Base URL used in messages and links, without a trailing slash.
    pub fn public_url(&self) -> String {
        let configured = self.server.public_url.trim().trim_end_matches('/');
        if configured.is_empty() { format!("http://{}", self.server.listen) } else { configured.to_string() }
    }
}

impl ReminderSettings {
    /// A local time of day such as `07:30`, named by its setting.
    pub fn time_of_day(name: &str, value: &str) -> Result<chrono::NaiveTime, String> {
        chrono::NaiveTime::parse_from_str(value, "%H:%M")
            .map_err(|_| format!("reminders.{name} {value:?} is not a time such as 07:30"))
    }

    /// A duration that must be above zero, named by its setting.
    pub fn span(name: &str, value: Duration) -> Result<chrono::Duration, String> {
        chrono::Duration::from_std(value)
            .ok()
            .filter(|d| *d > chrono::Duration::zero())
            .ok_or(format!("reminders.{name} must be above zero"))
    }

    pub fn weekday(&self) -> Result<chrono::Weekday, String> {
        self.weekly_summary_day.parse::<chrono::Weekday>().map_err(|_| {
            format!("reminders.weekly_summary_day {:?} is not a weekday such as Mon", self.weekly_summary_day)
        })
    }

    fn check(&self) -> Result<(), String> {
        Self::time_of_day("digest_time", &self.digest_time)?;
        Self::time_of_day("quiet_start", &self.quiet_start)?;
        Self::time_of_day("quiet_end", &self.quiet_end)?;
        self.weekday()?;
        Self::span("due_soon_window", self.due_soon_window)?;
        Self::span("records_nudge_every", self.records_nudge_every)?;
        Ok(())
    }
}

impl StageDurations {
    /// Each open stage's allowance, by the stage's name.
    pub fn entries(&self) -> [(&'static str, Duration); 4] {
        [
            ("records_requested", self.records_requested),
            ("specialist_chosen", self.specialist_chosen),
            ("consultation_held", self.consultation_held),
            ("opinions_compared", self.opinions_compared),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_load_and_validate() {
        let settings = Settings::defaults().expect("defaults are valid");
        assert_eq!(settings.server.listen.to_string(), "127.0.0.1:3000");
        assert!(settings.database.url.expose().starts_with("sqlite://data/"));
        assert!(!format!("{settings:?}").contains("sqlite://"), "the URL never prints");
        assert_eq!(settings.service_levels.routine.records_requested, Duration::from_secs(14 * 24 * 3600));
    }

    #[test]
    fn a_zero_service_level_is_refused() {
        let raw = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .set_override("service_levels.routine.consultation_held", "0s")
            .and_then(|b| b.build())
            .expect("builds");
        let err = Settings::finish(raw).expect_err("zero is refused");
        assert!(err.to_string().contains("consultation_held"), "{err}");
    }

    #[test]
    fn retention_is_off_by_default_and_checked_when_on() {
        let settings = Settings::defaults().expect("defaults are valid");
        assert_eq!(settings.retention.erase_closed_after(), Ok(None));
        let with = |value: &str| {
            let raw = Config::builder()
                .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
                .set_override("retention.erase_closed_after", value)
                .and_then(|b| b.build())
                .expect("builds");
            Settings::finish(raw)
        };
        let on = with("2y").expect("a duration is accepted");
        let two_years = on.retention.erase_closed_after().expect("valid").expect("on");
        assert!(two_years >= Duration::from_secs(2 * 365 * 24 * 3600), "{two_years:?}");
        let err = with("two years").expect_err("words are refused");
        assert!(err.to_string().contains("retention.erase_closed_after"), "{err}");
    }
}
