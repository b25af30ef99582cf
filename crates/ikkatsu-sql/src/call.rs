//! SQL statements as external calls: each statement a step runs through [`observed`] is
//! told to the step's call listeners ([`ikkatsu_core::call`]) with the database, the
//! statement's kind (its first keyword: `select`, `insert`, `update`, `delete`, …), the
//! table it names, the rows it returned or changed, how long it took and its error. The
//! statement's text and its bound values are never part of the call: the kind and the table
//! are read from the text only when somebody listens.

use std::fmt::Display;

use ikkatsu_core::call::{CallKind, CallTimer, ExternalCall};

/// The database name of a call (`postgres`, `mysql`, `sqlite`) from a driver's name
/// (`PostgreSQL`, `MySQL`, `SQLite`).
pub fn backend_name(driver: &str) -> String {
    let lower = driver.to_ascii_lowercase();
    match lower.as_str() {
        "postgresql" => "postgres".to_string(),
        _ => lower,
    }
}

/// The kind (first keyword, lower case) and the table of the statement `sql`: the name after
/// `FROM` (`select`, `delete`), `INTO` (`insert`), `UPDATE`, or `TABLE`; `""` when it names
/// none. After a `WITH` clause, the statement it introduces.
pub fn statement_target(sql: &str) -> (String, String) {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';'))
        .filter(|w| !w.is_empty())
        .collect();
    let main = ["select", "insert", "update", "delete", "merge", "replace"];
    // After common table expressions (`WITH … AS (…)`), the last main keyword is the
    // statement's.
    let start = if words.first().is_some_and(|w| lower(w) == "with") {
        words
            .iter()
            .rposition(|w| main.contains(&lower(w).as_str()))
            .unwrap_or(0)
    } else {
        0
    };
    let rest = &words[start.min(words.len())..];
    let kind = rest.first().map(|w| lower(w)).unwrap_or_default();
    let after = match kind.as_str() {
        "insert" | "replace" | "merge" => "into",
        "update" => "update",
        "create" | "drop" | "alter" | "truncate" => "table",
        _ => "from",
    };
    let mut names = rest.iter().skip_while(|w| lower(w) != after).skip(1);
    let mut table = names.next().copied().unwrap_or_default();
    if lower(table) == "if" {
        // `CREATE TABLE IF NOT EXISTS name`, `DROP TABLE IF EXISTS name`
        table = names
            .find(|w| lower(w) == "exists")
            .and_then(|_| names.next())
            .copied()
            .unwrap_or_default();
    }
    let table = table.trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'));
    (kind, table.to_string())
}

fn lower(word: &str) -> String {
    word.to_ascii_lowercase()
}

/// Runs `work`, the statement `sql` on the database `backend`, and reports it to the
/// current step's call listeners with the rows `rows` counts in its result.
pub async fn observed<T, E: Display>(
    backend: &str,
    sql: &str,
    work: impl Future<Output = Result<T, E>>,
    rows: impl FnOnce(&T) -> u64,
) -> Result<T, E> {
    let timer = CallTimer::start();
    let result = work.await;
    timer.finish(|| {
        let (kind, table) = statement_target(sql);
        let call = ExternalCall::new(CallKind::Sql, backend_name(backend), kind, table);
        match &result {
            Ok(value) => call.rows(rows(value)),
            Err(err) => call.failed(err),
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_tables() {
        let cases = [
            (
                "SELECT a, b FROM people WHERE id = $1",
                ("select", "people"),
            ),
            (
                "insert into \"orders\" (id) values (?)",
                ("insert", "orders"),
            ),
            (
                "UPDATE ikkatsu_step_execution SET status = $1 WHERE id = $2 RETURNING version",
                ("update", "ikkatsu_step_execution"),
            ),
            ("DELETE FROM `t` WHERE x = 'secret'", ("delete", "t")),
            (
                "CREATE TABLE IF NOT EXISTS done (path TEXT)",
                ("create", "done"),
            ),
            (
                "WITH x AS (SELECT 1 FROM a) SELECT * FROM x",
                ("select", "x"),
            ),
            ("BEGIN", ("begin", "")),
            ("", ("", "")),
        ];
        for (sql, (kind, table)) in cases {
            assert_eq!(
                statement_target(sql),
                (kind.to_string(), table.to_string()),
                "{sql}"
            );
        }
        assert_eq!(backend_name("PostgreSQL"), "postgres");
        assert_eq!(backend_name("SQLite"), "sqlite");
    }
}
