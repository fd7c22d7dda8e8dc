// Metadata backup and restore, shared by both adapters (included with `Store`,
// `Db`, `begin_write` and the engine's catalog queries in scope). Table and
// column names come from the target database's own catalog, never from the
// file; every value is a bound parameter.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, Row, Transaction};

use crate::metadata::backup::{BackupError, BackupSummary, ColumnKind, FORMAT, Line, ordered_tables};
use crate::metadata::error::sql_err;
use crate::metadata::{BackupStore, MetaResult};

type Columns = Vec<(String, ColumnKind)>;

/// Catalog names are plain identifiers; anything else is refused rather than quoted.
fn identifier(name: &str) -> Result<&str, BackupError> {
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain { Ok(name) } else { Err(BackupError::Format(format!("unexpected identifier {name:?}"))) }
}

async fn schema_version(tx: &mut Transaction<'static, Db>) -> MetaResult<i64> {
    let (version,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
        .fetch_one(&mut **tx)
        .await
        .map_err(sql_err("schema"))?;
    Ok(version)
}

async fn catalog(tx: &mut Transaction<'static, Db>) -> Result<Vec<(String, Columns)>, BackupError> {
    let names: Vec<(String,)> = sqlx::query_as(LIST_TABLES).fetch_all(&mut **tx).await.map_err(sql_err("catalog"))?;
    let mut tables = Vec::new();
    for table in ordered_tables(names.into_iter().map(|(name,)| name).collect()) {
        identifier(&table)?;
        let columns: Vec<(String, String)> =
            sqlx::query_as(TABLE_COLUMNS).bind(&table).fetch_all(&mut **tx).await.map_err(sql_err("catalog"))?;
        let mut typed = Vec::new();
        for (column, declared) in columns {
            identifier(&column)?;
            typed.push((column, ColumnKind::of(&declared)));
        }
        tables.push((table, typed));
    }
    Ok(tables)
}

/// Whether a table's rows are numbered by the engine (an integer `id`).
fn has_identity(columns: &Columns) -> bool {
    columns.iter().any(|(name, kind)| name == "id" && *kind == ColumnKind::Integer)
}

fn write_line(out: &mut (dyn Write + Send), line: &Line) -> Result<(), BackupError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

fn cell(row: &<Db as sqlx::Database>::Row, index: usize, kind: ColumnKind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        ColumnKind::Integer => row.try_get::<Option<i64>, _>(index)?.map_or(Value::Null, Value::from),
        ColumnKind::Boolean => row.try_get::<Option<bool>, _>(index)?.map_or(Value::Null, Value::from),
        ColumnKind::Text => row.try_get::<Option<String>, _>(index)?.map_or(Value::Null, Value::from),
    })
}

fn bad_value(table: &str, column: &str) -> BackupError {
    BackupError::Format(format!("{table}.{column} holds a value of the wrong type"))
}

/// Inserts one row of `table`. A column this schema lacks is refused, unless
/// the backup is of an older schema (`older`): a later migration dropped it.
async fn insert(
    tx: &mut Transaction<'static, Db>,
    (table, columns): (&str, &Columns),
    row: &Map<String, Value>,
    older: bool,
) -> Result<(), BackupError> {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (column, value) in row {
        let Some(kind) = columns.iter().find(|(name, _)| name == column).map(|(_, kind)| *kind) else {
            if older {
                continue;
            }
            return Err(BackupError::Format(format!("{table} has no column {column:?} here")));
        };
        names.push(column.as_str());
        values.push((column, kind, value));
    }
    let placeholders: Vec<String> = (1..=names.len()).map(|n| format!("${n}")).collect();
    let sql = format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), placeholders.join(", "));
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (column, kind, value) in values {
        query = match (kind, value) {
            (ColumnKind::Integer, Value::Null) => query.bind(None::<i64>),
            (ColumnKind::Integer, v) => query.bind(Some(v.as_i64().ok_or_else(|| bad_value(table, column))?)),
            (ColumnKind::Boolean, Value::Null) => query.bind(None::<bool>),
            (ColumnKind::Boolean, Value::Bool(b)) => query.bind(Some(*b)),
            (ColumnKind::Boolean, v) => query.bind(Some(v.as_i64().ok_or_else(|| bad_value(table, column))? != 0)),
            (ColumnKind::Text, Value::Null) => query.bind(None::<String>),
            (ColumnKind::Text, v) => query.bind(Some(v.as_str().ok_or_else(|| bad_value(table, column))?.to_owned())),
        };
    }
    query.execute(&mut **tx).await.map_err(sql_err("restored row"))?;
    Ok(())
}

#[async_trait]
impl BackupStore for Store {
    async fn dump(
        &self,
        out: &mut (dyn Write + Send),
        created_at: DateTime<Utc>,
    ) -> Result<BackupSummary, BackupError> {
        // One read-only snapshot: the file is one consistent moment, even while Coffer serves.
        let mut tx = self.pool().begin_with(BEGIN_SNAPSHOT).await.map_err(sql_err("snapshot"))?;
        let schema = schema_version(&mut tx).await?;
        let tables = catalog(&mut tx).await?;
        let engine = ENGINE.to_owned();
        let created_at = created_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        write_line(out, &Line::Header { coffer_backup: FORMAT, created_at, engine, schema })?;
        let mut rows = 0u64;
        for (table, columns) in &tables {
            let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
            let order: Vec<String> = (1..=names.len()).map(|n| n.to_string()).collect();
            let sql = format!("SELECT {} FROM {table} ORDER BY {}", names.join(", "), order.join(", "));
            let mut stream = sqlx::query(AssertSqlSafe(sql)).fetch(&mut *tx);
            while let Some(found) = stream.try_next().await.map_err(sql_err("backup"))? {
                let mut row = Map::new();
                for (index, (name, kind)) in columns.iter().enumerate() {
                    row.insert(name.clone(), cell(&found, index, *kind).map_err(sql_err("backup"))?);
                }
                write_line(out, &Line::Row { table: table.clone(), row })?;
                rows += 1;
            }
        }
        let mut identities = BTreeMap::new();
        for (table, columns) in &tables {
            if has_identity(columns) {
                let last: Option<(Option<i64>,)> = sqlx::query_as(AssertSqlSafe(LAST_IDENTITY.replace("{table}", table)))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sql_err("backup"))?;
                if let Some((Some(last),)) = last {
                    identities.insert(table.clone(), last);
                }
            }
        }
        write_line(out, &Line::Trailer { end: true, rows, identities })?;
        out.flush()?;
        tx.rollback().await.map_err(sql_err("snapshot"))?;
        Ok(BackupSummary { tables: tables.len(), rows, schema })
    }

    async fn restore(&self, input: &mut (dyn BufRead + Send)) -> Result<BackupSummary, BackupError> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let current = schema_version(&mut tx).await?;
        let tables = catalog(&mut tx).await?;
        for table in ["users", "buckets", "objects", "audit_events"] {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let (count,): (i64,) =
                sqlx::query_as(AssertSqlSafe(sql)).fetch_one(&mut *tx).await.map_err(sql_err("restore"))?;
            if count > 0 {
                return Err(BackupError::NotEmpty(table.into()));
            }
        }
        // What migrations seed (the audit chain's head row) is replaced by the backup's own.
        for (table, _) in tables.iter().rev() {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await
                .map_err(sql_err("restore"))?;
        }
        let mut lines = input.lines();
        let header = lines.next().transpose()?.ok_or_else(|| BackupError::Format("the file is empty".into()))?;
        let schema = match serde_json::from_str::<Line>(&header) {
            Ok(Line::Header { coffer_backup: FORMAT, schema, .. }) => schema,
            Ok(Line::Header { coffer_backup, .. }) => {
                return Err(BackupError::Format(format!("format version {coffer_backup} is not supported")));
            }
            _ => return Err(BackupError::Format("the first line is not a backup header".into())),
        };
        if schema > current {
            return Err(BackupError::NewerSchema { backup: schema, current });
        }
        let mut rows = 0u64;
        for (number, line) in lines.enumerate() {
            let line = line?;
            match serde_json::from_str::<Line>(&line) {
                Ok(Line::Row { table, row }) => {
                    let older = schema < current;
                    match tables.iter().find(|(name, _)| *name == table) {
                        Some((table, columns)) => insert(&mut tx, (table, columns), &row, older).await?,
                        // A table a later migration dropped: its rows have no place here.
                        None if older => {}
                        None => return Err(BackupError::Format(format!("unknown table {table:?}"))),
                    }
                    rows += 1;
                }
                Ok(Line::Trailer { end: true, rows: announced, identities }) if announced == rows => {
                    for (table, _) in tables.iter().filter(|(_, columns)| has_identity(columns)) {
                        let last = identities.get(table).copied().unwrap_or(0);
                        for statement in CONTINUE_IDENTITY {
                            sqlx::query(AssertSqlSafe(statement.replace("{table}", table)))
                                .bind(last)
                                .execute(&mut *tx)
                                .await
                                .map_err(sql_err("restore"))?;
                        }
                    }
                    tx.commit().await.map_err(sql_err("transaction"))?;
                    return Ok(BackupSummary { tables: tables.len(), rows, schema });
                }
                Ok(_) => return Err(BackupError::Truncated),
                Err(error) => return Err(BackupError::Format(format!("line {}: {error}", number + 2))),
            }
        }
        Err(BackupError::Truncated)
    }
}
