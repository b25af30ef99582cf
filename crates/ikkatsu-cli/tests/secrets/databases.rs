//! The PostgreSQL and MySQL/MariaDB databases of the marker tests, made and dropped through
//! the servers' command-line clients.

use std::process::Command;

use super::{marker, text};

/// Runs `sql` on the PostgreSQL test server as root; returns its output.
fn psql(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "root", "-d", database, "-Atc", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql {sql}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh PostgreSQL database on the test server, dropped at the end.
pub struct Database(pub String);

impl Database {
    pub fn create(name: &str) -> Self {
        let name = format!("ikkatsu_secrets_{name}_{}", std::process::id());
        psql(
            "test",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql("test", &format!("CREATE DATABASE {name}"));
        Database(name)
    }

    /// A status store URL of this database with a marker password (trust authentication
    /// ignores it).
    pub fn status_url(&self) -> String {
        format!(
            "postgres://root:{}@127.0.0.1:5432/{}",
            marker("pgstatus"),
            self.0
        )
    }

    /// All the rows of all the tables.
    pub fn dump(&self) -> String {
        let out = Command::new("pg_dump")
            .args(["-h", "127.0.0.1", "-U", "root", "--data-only", &self.0])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "root", "-d", "test", "-Atc"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0))
            .output();
    }
}

/// Runs `sql` on the MySQL/MariaDB test server as root.
fn mysql(sql: &str) {
    let out = Command::new("mysql")
        .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", sql])
        .output()
        .unwrap();
    assert!(out.status.success(), "mysql {sql}: {}", text(&out));
}

/// A fresh database on the MySQL/MariaDB test server and a user of it whose password is a
/// marker (its root has no password), both dropped at the end.
pub struct MysqlDatabase {
    pub name: String,
    pub user: String,
}

impl MysqlDatabase {
    const HOSTS: [&str; 2] = ["%", "localhost"];

    pub fn create() -> Self {
        let pid = std::process::id();
        let db = MysqlDatabase {
            name: format!("ikkatsu_secrets_{pid}"),
            user: format!("u_secrets_{pid}"),
        };
        mysql(&db.drop_statements());
        mysql(&format!("CREATE DATABASE {}", db.name));
        for host in Self::HOSTS {
            mysql(&format!(
                "CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'; \
                 GRANT ALL ON {name}.* TO '{user}'@'{host}'",
                user = db.user,
                password = marker("mysqlpw"),
                name = db.name,
            ));
        }
        db
    }

    /// The URL of this database as its user with `password`.
    pub fn url(&self, password: &str) -> String {
        format!(
            "mysql://{}:{password}@127.0.0.1:3306/{}",
            self.user, self.name
        )
    }

    /// The tables with their rows.
    pub fn dump(&self) -> String {
        let out = Command::new("mysqldump")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                "3306",
                "-u",
                "root",
                "--skip-extended-insert",
            ])
            .arg(&self.name)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What drops the database and the user.
    fn drop_statements(&self) -> String {
        let mut sql = format!("DROP DATABASE IF EXISTS {};", self.name);
        for host in Self::HOSTS {
            sql.push_str(&format!(" DROP USER IF EXISTS '{}'@'{host}';", self.user));
        }
        sql
    }
}

impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        let _ = Command::new("mysql")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"])
            .arg(self.drop_statements())
            .output();
    }
}
