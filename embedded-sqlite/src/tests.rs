use std::sync::Arc;

use super::*;

const FIRST: Migration =
    Migration { version: 1, name: "notes", sql: "CREATE TABLE notes (id INTEGER PRIMARY KEY);" };
const SECOND: Migration =
    Migration { version: 2, name: "note text", sql: "ALTER TABLE notes ADD COLUMN text TEXT;" };

fn version(conn: &Connection) -> u32 {
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).expect("user_version")
}

#[test]
fn migrations_apply_once_in_order_and_a_reopened_file_keeps_its_version() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("nested").join("db.sqlite");
    let conn = open(&path, &[FIRST]).expect("opens and creates");
    assert_eq!(version(&conn), 1);
    drop(conn);
    let mut conn = open(&path, &[FIRST]).expect("reopens without running FIRST again");
    assert_eq!(migrate(&mut conn, &[FIRST, SECOND]).expect("the new step"), vec![2]);
    conn.execute("INSERT INTO notes (id, text) VALUES (1, 'kept')", []).expect("both applied");
    assert_eq!(migrate(&mut conn, &[FIRST, SECOND]).expect("nothing new"), Vec::<u32>::new());
    let mode: String =
        conn.pragma_query_value(None, "journal_mode", |row| row.get(0)).expect("journal mode");
    assert_eq!(mode, "wal");
}

#[test]
fn a_file_newer_than_the_build_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("db.sqlite");
    drop(open(&path, &[FIRST, SECOND]).expect("the newer build"));
    let refused = open(&path, &[FIRST]).expect_err("an older build refuses it");
    assert!(refused.0.contains("version 2, newer than this build knows (1)"), "{refused}");
    let conn = open_connection(&path).expect("still a database");
    assert_eq!(version(&conn), 2, "nothing was changed");
}

#[test]
fn a_failing_step_records_nothing_and_misnumbered_steps_are_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("db.sqlite");
    let broken = Migration { version: 2, name: "broken", sql: "CREATE TABLE notes (x);" };
    let error = open(&path, &[FIRST, broken]).expect_err("the step fails");
    assert!(error.0.contains("migration 2 (broken)"), "{error}");
    let mut conn = open_connection(&path).expect("still a database");
    assert_eq!(version(&conn), 1, "the failed step left the version where it was");
    let gap = Migration { version: 3, ..SECOND };
    assert!(migrate(&mut conn, &[FIRST, gap]).is_err(), "a gap in the numbers");
}

#[tokio::test]
async fn reads_reuse_connections_and_see_what_the_writer_committed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("db.sqlite");
    let writer = open(&path, &[FIRST]).expect("opens");
    writer.execute("INSERT INTO notes (id) VALUES (7)", []).expect("a write");
    let readers = Arc::new(Readers::new(&path));
    for _ in 0..3 {
        let id: i64 = readers
            .read(|conn| conn.query_row("SELECT id FROM notes", [], |row| row.get(0)))
            .await
            .expect("a read");
        assert_eq!(id, 7);
    }
    assert_eq!(readers.idle(), 1, "one connection served the reads one after another");
    let failed = readers.read(|conn| conn.execute("SELECT * FROM missing", [])).await;
    assert!(failed.is_err_and(|error| error.0.contains("missing")));
}
