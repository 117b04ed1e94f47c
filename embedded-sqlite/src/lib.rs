//! The one home of SQLite for the embedded backends (`eventlog`'s log and `viewstore`'s
//! store, each a file under `chat dev`'s data directory): how a file is opened (WAL,
//! `synchronous=FULL`, so a commit is on disk when it returns), a pool of read connections
//! used off the async threads, and numbered schema migrations recorded in the file's
//! `user_version`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

/// Why a database operation failed, in words for the backend's own error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

fn failure(error: impl std::fmt::Display) -> Failure {
    Failure(error.to_string())
}

/// One step of a file's schema. Versions start at 1 and rise by one; a step runs once, in
/// a transaction with the version it records.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A connection to `path` as every connection of the embedded backends is made: WAL (readers
/// never block the writer), `synchronous=FULL` (a commit fsyncs the WAL), and a busy timeout
/// for the moments the WAL is checkpointed.
pub fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Opens (creating it and its directory if needed) the file at `path` and brings its schema
/// up to `migrations`; returns the connection, for the backend's writer. A file whose
/// schema is newer than this build knows is refused rather than written.
pub fn open(path: &Path, migrations: &[Migration]) -> Result<Connection, Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failure)?;
    }
    let mut conn = open_connection(path).map_err(failure)?;
    migrate(&mut conn, migrations)
        .map_err(|error| Failure(format!("{}: {error}", path.display())))?;
    Ok(conn)
}

/// Applies the `migrations` the file has not seen yet, in order; returns their versions.
pub fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<Vec<u32>, Failure> {
    let current: u32 =
        conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(failure)?;
    let known = migrations.last().map_or(0, |last| last.version);
    if current > known {
        return Err(Failure(format!(
            "the schema is at version {current}, newer than this build knows ({known}): \
             run the newer chat on it"
        )));
    }
    let mut applied = Vec::new();
    for (expected, migration) in (1..).zip(migrations) {
        if migration.version != expected {
            return Err(Failure(format!(
                "migration {:?} is numbered {}, expected {expected}",
                migration.name, migration.version
            )));
        }
        if migration.version <= current {
            continue;
        }
        let transaction = conn.transaction().map_err(failure)?;
        transaction.execute_batch(migration.sql).map_err(|error| {
            Failure(format!("migration {} ({}): {error}", migration.version, migration.name))
        })?;
        transaction.pragma_update(None, "user_version", migration.version).map_err(failure)?;
        transaction.commit().map_err(failure)?;
        applied.push(migration.version);
    }
    Ok(applied)
}

/// Read connections to one file, reused across reads; each read runs on a blocking thread.
#[derive(Debug)]
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new(path: &Path) -> Self {
        Self { path: path.to_owned(), idle: Mutex::new(Vec::new()) }
    }

    /// Runs `work` on an idle connection (or a new one), off the async threads.
    pub async fn read<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Failure> {
        let readers = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let pooled = readers.idle.lock().pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&readers.path).map_err(failure)?,
            };
            let result = work(&conn).map_err(failure);
            readers.idle.lock().push(conn);
            result
        })
        .await
        .map_err(failure)?
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}

#[cfg(test)]
mod tests;
