//! The durable side of jobs: one SQLite file (WAL mode) in the data
//! directory, one table, one row per job.
//!
//! Every call is blocking; [`super::Jobs`] makes them on tokio's blocking
//! threads, never on an async worker. State changes are single guarded
//! `UPDATE`s (`... WHERE state = 'queued'`), so a cancel and a dispatch
//! cannot both win, and a job's result and its terminal state are written
//! together: a job completes at most once, and after a crash every job
//! that had not completed is queued again ([`Store::open`]).
//!
//! If the file is deleted (or replaced) under a running server, SQLite
//! would go on writing to the deleted file, and a restart would lose every
//! job: before each write the store checks that its path still names the
//! file it has open, and if not, writes what it holds back to the path
//! (`VACUUM INTO`) and goes on with that file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

/// A job's life: `queued` → `running` → `succeeded` | `failed`, or
/// `queued` → `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "queued" => State::Queued,
            "running" => State::Running,
            "succeeded" => State::Succeeded,
            "cancelled" => State::Cancelled,
            _ => State::Failed,
        }
    }
}

/// What a job needs to run: the model it addresses, how its body is
/// encoded, and the request's metadata.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    /// `records` (a native endpoint's body) or `v2` (a V2 infer body).
    pub format: String,
    pub model: String,
    /// The model's version (native) or the path's version (V2).
    pub version: Option<String>,
    /// Path parameters, as a JSON object.
    pub params: String,
    pub body: Vec<u8>,
    pub request_id: String,
    pub submitted_ms: i64,
}

/// A stored job as `GET /jobs/{id}` shows it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub job: NewJob,
    pub state: State,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub queue_ns: Option<i64>,
    pub handler_ns: Option<i64>,
    pub batch_rows: Option<i64>,
    pub result: Option<Vec<u8>>,
    pub error: Option<String>,
}

/// How a finished job ended.
pub struct Completion {
    pub finished_ms: i64,
    pub queue_ns: Option<i64>,
    pub handler_ns: Option<i64>,
    pub batch_rows: Option<i64>,
    pub result: Result<Vec<u8>, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the job store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not create the jobs directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("{0} jobs are queued already")]
    Full(usize),
}

pub struct Store {
    path: PathBuf,
    open: Mutex<Open>,
}

/// The connection, and the inode of the file it has open.
struct Open {
    conn: Connection,
    inode: u64,
}

fn connect(path: &Path) -> Result<Open, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // WAL + NORMAL survives a process crash (SIGKILL) without losing a
    // commit; only a power loss can drop the last transactions.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let inode = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
    Ok(Open { conn, inode })
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    format TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT,
    params TEXT NOT NULL,
    body BLOB NOT NULL,
    request_id TEXT NOT NULL,
    submitted_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    queue_ns INTEGER,
    handler_ns INTEGER,
    batch_rows INTEGER,
    result BLOB,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_ms);
";

impl Store {
    /// Opens (or creates) `dir/jobs.sqlite3`. Jobs that were running when
    /// the last process ended never completed: they are queued again.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { dir: dir.display().to_string(), source })?;
        let path = dir.join("jobs.sqlite3");
        let open = connect(&path)?;
        let conn = &open.conn;
        conn.execute_batch(SCHEMA)?;
        let resumed =
            conn.execute("UPDATE jobs SET state = 'queued', started_ms = NULL WHERE state = 'running'", [])?;
        if resumed > 0 {
            tracing::info!(jobs = resumed, "jobs interrupted by the last stop are queued again");
        }
        Ok(Store { path, open: Mutex::new(open) })
    }

    /// The connection, for a read.
    fn conn(&self) -> Locked<'_> {
        Locked(self.open.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The connection, for a write: first restored to the store's path if
    /// the file there is gone or another one.
    fn writer(&self) -> Result<Locked<'_>, StoreError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if current != Some(open.inode) {
            self.restore(&mut open)?;
        }
        Ok(Locked(open))
    }

    /// Writes the open database back to the store's path and reopens it.
    fn restore(&self, open: &mut Open) -> Result<(), StoreError> {
        tracing::error!(path = %self.path.display(), "the jobs database was deleted or replaced; writing it back from the open copy");
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(name));
        }
        let target = self.path.to_str().ok_or_else(|| StoreError::Dir {
            dir: self.path.display().to_string(),
            source: std::io::Error::other("the path is not UTF-8"),
        })?;
        open.conn.execute("VACUUM INTO ?1", [target])?;
        *open = connect(&self.path)?;
        Ok(())
    }

    /// Writes a queued job, unless `max_queued` jobs are queued already.
    pub fn insert(&self, job: &NewJob, max_queued: usize) -> Result<(), StoreError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction()?;
        let queued: i64 = tx.query_row("SELECT COUNT(*) FROM jobs WHERE state = 'queued'", [], |r| r.get(0))?;
        if queued as usize >= max_queued {
            return Err(StoreError::Full(max_queued));
        }
        tx.execute(
            "INSERT INTO jobs (id, state, format, model, version, params, body, request_id, submitted_ms)
             VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![job.id, job.format, job.model, job.version, job.params, job.body, job.request_id, job.submitted_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks up to `limit` of the oldest queued jobs running and returns them.
    pub fn claim(&self, limit: usize, now_ms: i64) -> Result<Vec<NewJob>, StoreError> {
        let mut conn = self.writer()?;
        let tx = conn.transaction()?;
        let jobs = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, format, model, version, params, body, request_id, submitted_ms
                 FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok(NewJob {
                    id: r.get(0)?,
                    format: r.get(1)?,
                    model: r.get(2)?,
                    version: r.get(3)?,
                    params: r.get(4)?,
                    body: r.get(5)?,
                    request_id: r.get(6)?,
                    submitted_ms: r.get(7)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        {
            let mut update = tx.prepare_cached(
                "UPDATE jobs SET state = 'running', started_ms = ?2 WHERE id = ?1 AND state = 'queued'",
            )?;
            for job in &jobs {
                update.execute(params![job.id, now_ms])?;
            }
        }
        tx.commit()?;
        Ok(jobs)
    }

    /// Records how a running job ended; false when it was not running
    /// (it completed already: a job completes once).
    pub fn complete(&self, id: &str, done: &Completion) -> Result<bool, StoreError> {
        let (state, result, error) = match &done.result {
            Ok(body) => (State::Succeeded, Some(body.as_slice()), None),
            Err(e) => (State::Failed, None, Some(e.as_str())),
        };
        let changed = self.writer()?.execute(
            "UPDATE jobs SET state = ?2, finished_ms = ?3, queue_ns = ?4, handler_ns = ?5, batch_rows = ?6,
                 result = ?7, error = ?8, body = x''
             WHERE id = ?1 AND state = 'running'",
            params![
                id,
                state.as_str(),
                done.finished_ms,
                done.queue_ns,
                done.handler_ns,
                done.batch_rows,
                result,
                error
            ],
        )?;
        Ok(changed == 1)
    }

    /// Cancels a queued job. `Ok(None)`: no such job; `Ok(Some(state))`:
    /// the state it is in now (`Cancelled` when this call cancelled it).
    pub fn cancel(&self, id: &str, now_ms: i64) -> Result<Option<State>, StoreError> {
        let conn = self.writer()?;
        let changed = conn.execute(
            "UPDATE jobs SET state = 'cancelled', finished_ms = ?2, body = x'' WHERE id = ?1 AND state = 'queued'",
            params![id, now_ms],
        )?;
        if changed == 1 {
            return Ok(Some(State::Cancelled));
        }
        let state: Option<String> =
            conn.query_row("SELECT state FROM jobs WHERE id = ?1", [id], |r| r.get(0)).optional()?;
        Ok(state.map(|s| State::parse(&s)))
    }

    pub fn get(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, format, model, version, params, request_id, submitted_ms, state, started_ms, finished_ms,
                    queue_ns, handler_ns, batch_rows, result, error
             FROM jobs WHERE id = ?1",
        )?;
        let row = stmt
            .query_row([id], |r| {
                Ok(JobRow {
                    job: NewJob {
                        id: r.get(0)?,
                        format: r.get(1)?,
                        model: r.get(2)?,
                        version: r.get(3)?,
                        params: r.get(4)?,
                        body: Vec::new(),
                        request_id: r.get(5)?,
                        submitted_ms: r.get(6)?,
                    },
                    state: State::parse(&r.get::<_, String>(7)?),
                    started_ms: r.get(8)?,
                    finished_ms: r.get(9)?,
                    queue_ns: r.get(10)?,
                    handler_ns: r.get(11)?,
                    batch_rows: r.get(12)?,
                    result: r.get(13)?,
                    error: r.get(14)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    /// Deletes jobs that ended before `before_ms`; how many.
    pub fn sweep(&self, before_ms: i64) -> Result<usize, StoreError> {
        let n = self.writer()?.execute(
            "DELETE FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1
                 AND state IN ('succeeded', 'failed', 'cancelled')",
            [before_ms],
        )?;
        Ok(n)
    }
}

/// The locked connection, used as a `Connection`.
struct Locked<'a>(MutexGuard<'a, Open>);

impl std::ops::Deref for Locked<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0.conn
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> NewJob {
        NewJob {
            id: id.into(),
            format: "records".into(),
            model: "m".into(),
            version: None,
            params: "{}".into(),
            body: b"[]".to_vec(),
            request_id: "r".into(),
            submitted_ms: 1,
        }
    }

    fn done(at: i64) -> Completion {
        Completion {
            finished_ms: at,
            queue_ns: None,
            handler_ns: None,
            batch_rows: Some(1),
            result: Ok(b"{}".to_vec()),
        }
    }

    #[test]
    fn jobs_claimed_in_order_complete_once_and_resume_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for id in ["a", "b", "c"] {
            store.insert(&job(id), 10).unwrap();
        }
        let claimed: Vec<String> = store.claim(2, 5).unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(claimed, ["a", "b"]);
        assert!(store.complete("a", &done(6)).unwrap());
        assert!(!store.complete("a", &done(7)).unwrap(), "a job completes once");
        assert_eq!(store.cancel("b", 8).unwrap(), Some(State::Running), "a running job is not cancelled");
        assert_eq!(store.cancel("c", 8).unwrap(), Some(State::Cancelled));
        assert_eq!(store.cancel("zzz", 8).unwrap(), None);
        drop(store);
        // "b" was running when the process ended: it is queued again, "a" stays done.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get("b").unwrap().unwrap().state, State::Queued);
        assert_eq!(store.get("a").unwrap().unwrap().state, State::Succeeded);
        assert_eq!(store.claim(10, 9).unwrap().len(), 1);
    }

    #[test]
    fn a_full_queue_refuses_and_the_sweep_deletes_old_results() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert(&job("a"), 1).unwrap();
        assert!(matches!(store.insert(&job("b"), 1), Err(StoreError::Full(1))));
        store.claim(1, 2).unwrap();
        store.complete("a", &done(100)).unwrap();
        assert_eq!(store.sweep(100).unwrap(), 0);
        assert_eq!(store.sweep(101).unwrap(), 1);
        assert!(store.get("a").unwrap().is_none());
    }

    #[test]
    fn a_database_deleted_under_the_store_is_written_back_with_every_job() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert(&job("a"), 10).unwrap();
        store.claim(1, 2).unwrap();
        store.complete("a", &done(3)).unwrap();
        store.insert(&job("b"), 10).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            std::fs::remove_file(dir.path().join(format!("jobs.sqlite3{suffix}"))).unwrap();
        }
        store.insert(&job("c"), 10).unwrap();
        assert!(dir.path().join("jobs.sqlite3").exists());
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.get("a").unwrap().unwrap().state, State::Succeeded);
        let queued: Vec<String> = store.claim(10, 4).unwrap().into_iter().map(|j| j.id).collect();
        assert_eq!(queued, ["b", "c"], "nothing accepted before or after the deletion is lost");
    }
}
