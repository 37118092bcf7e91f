//! Rows buffered per table and written as multi-row INSERT statements.
//! Statements of one size repeat, so the driver prepares each shape once
//! and reuses it; values go through the same binding as every other write,
//! so they are stored exactly as sea-orm stores them.

use std::fmt::Write as _;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// Bound values per statement, under SQLite's limit (32,766) and PostgreSQL's (65,535).
const MAX_PARAMS: usize = 30_000;
/// Beyond a few hundred rows a statement gets no faster, only bigger to prepare.
const MAX_ROWS: usize = 500;

pub struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    per_statement: usize,
    values: Vec<Value>,
    /// The statement for a full batch, built once per backend.
    full: Option<(DbBackend, String)>,
}

impl Table {
    pub fn new(name: &'static str, columns: &'static [&'static str]) -> Self {
        let per_statement = (MAX_PARAMS / columns.len()).clamp(1, MAX_ROWS);
        Self { name, columns, per_statement, values: Vec::new(), full: None }
    }

    /// Adds a row; its values come in the order of the table's columns.
    pub fn push<const N: usize>(&mut self, row: [Value; N]) {
        debug_assert_eq!(N, self.columns.len(), "a row of {} has one value per column", self.name);
        self.values.extend(row);
    }

    fn buffered(&self) -> usize {
        self.values.len() / self.columns.len()
    }

    pub fn has_full_batch(&self) -> bool {
        self.buffered() >= self.per_statement
    }

    /// Writes the buffered rows that fill whole statements; the rest wait.
    pub async fn write_full<C: ConnectionTrait>(&mut self, conn: &C) -> Result<(), DbErr> {
        while self.has_full_batch() {
            self.write(conn, self.per_statement).await?;
        }
        Ok(())
    }

    /// Adds every row of `rows` and writes them all, a full statement at a
    /// time as they come, so no more than one statement's rows wait.
    pub async fn insert_all<C: ConnectionTrait, const N: usize>(
        &mut self,
        conn: &C,
        rows: impl IntoIterator<Item = [Value; N]>,
    ) -> Result<(), DbErr> {
        for row in rows {
            self.push(row);
            self.write_full(conn).await?;
        }
        self.write_all(conn).await
    }

    /// Writes every buffered row.
    pub async fn write_all<C: ConnectionTrait>(&mut self, conn: &C) -> Result<(), DbErr> {
        self.write_full(conn).await?;
        let rest = self.buffered();
        if rest > 0 {
            self.write(conn, rest).await?;
        }
        Ok(())
    }

    async fn write<C: ConnectionTrait>(&mut self, conn: &C, rows: usize) -> Result<(), DbErr> {
        let backend = conn.get_database_backend();
        let sql = if rows == self.per_statement {
            match &self.full {
                Some((built_for, sql)) if *built_for == backend => sql.clone(),
                _ => {
                    let sql = insert_sql(backend, self.name, self.columns, rows);
                    self.full = Some((backend, sql.clone()));
                    sql
                }
            }
        } else {
            insert_sql(backend, self.name, self.columns, rows)
        };
        let values: Vec<Value> = self.values.drain(..rows * self.columns.len()).collect();
        conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        Ok(())
    }
}

fn insert_sql(backend: DbBackend, table: &str, columns: &[&str], rows: usize) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let mut sql = format!("INSERT INTO \"{table}\" ({}) VALUES ", quoted.join(", "));
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns.len() {
            if column > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if backend == DbBackend::Postgres {
                let _ = write!(sql, "${n}");
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_backend() {
        assert_eq!(
            insert_sql(DbBackend::Sqlite, "t", &["a", "at"], 2),
            "INSERT INTO \"t\" (\"a\", \"at\") VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            insert_sql(DbBackend::Postgres, "t", &["a", "at"], 2),
            "INSERT INTO \"t\" (\"a\", \"at\") VALUES ($1, $2), ($3, $4)"
        );
    }

    #[test]
    fn a_statement_stays_under_both_databases_limits() {
        let table = Table::new("cases", &["c"; 40]);
        assert!(table.per_statement * 40 <= MAX_PARAMS);
        assert_eq!(Table::new("narrow", &["a", "b"]).per_statement, MAX_ROWS);
    }
}
