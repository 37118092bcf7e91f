//! Online backup of a SQLite database with `VACUUM INTO`: a consistent copy
//! taken inside one read transaction while the server keeps running.

use std::path::Path;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::PortabilityError;

/// Writes a consistent copy of the SQLite database to `out`, which must not
/// exist yet. PostgreSQL is refused with a pointer to `pg_dump`.
pub async fn backup(db: &DatabaseConnection, out: &Path) -> Result<(), PortabilityError> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return Err(PortabilityError::Refused(
            "secondlook backup copies SQLite databases only; for PostgreSQL use its own tools, e.g. \
             pg_dump -Fc -f secondlook.dump \"$DATABASE_URL\" (restore with pg_restore)"
                .into(),
        ));
    }
    // Refused up front with a clear message; creating the file below refuses too.
    if out.exists() {
        return Err(PortabilityError::Refused(format!("{} already exists; choose a new file name", out.display())));
    }
    let path =
        out.to_str().ok_or_else(|| PortabilityError::Refused(format!("{} is not a UTF-8 path", out.display())))?;
    // An empty file, made private first, that SQLite then fills: the copy holds patient data.
    drop(
        super::file::create_private(out)
            .map_err(|e| PortabilityError::Refused(format!("cannot create {}: {e}", out.display())))?,
    );
    let copied =
        db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, "VACUUM INTO ?", [path.into()])).await;
    if let Err(err) = copied {
        // Leave no empty or partial file that could pass for a backup.
        let _ = std::fs::remove_file(out);
        return Err(err.into());
    }
    Ok(())
}
